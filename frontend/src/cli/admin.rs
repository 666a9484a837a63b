//! `strata tenant ...` and `strata key ...`.

use anyhow::Result;

use super::output::print_json;
use super::{KeyCommand, QuotaCommand, TenantCommand, UsageArgs};
use crate::http::admin::{IssuedKeyJson, KeyJson};
use strata_client::http::Client;

pub async fn tenant(client: &Client, json: bool, cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Create { name, plan } => {
            let t = client.create_tenant(&name, plan.as_deref()).await?;
            if json {
                return print_json(&t);
            }
            println!("created tenant {} (plan {})", t.name, t.plan);
        }
        TenantCommand::List => {
            let list = client.list_tenants().await?;
            if json {
                return print_json(&list);
            }
            for t in &list.tenants {
                println!("{:<32} plan={}", t.name, t.plan);
            }
        }
        TenantCommand::Describe { name } => {
            let t = client.describe_tenant(&name).await?;
            if json {
                return print_json(&t);
            }
            println!(
                "tenant {} plan={} created_ms={}",
                t.name, t.plan, t.created_ms
            );
        }
        TenantCommand::SetPlan { name, plan } => {
            let t = client.set_tenant_plan(&name, &plan).await?;
            if json {
                return print_json(&t);
            }
            println!("tenant {} is on plan {}", t.name, t.plan);
        }
        TenantCommand::Delete { name } => {
            let t = client.delete_tenant(&name).await?;
            if json {
                return print_json(&t);
            }
            println!("deleted tenant {}", t.name);
        }
    }
    Ok(())
}

fn print_issued(json: bool, k: &IssuedKeyJson) -> Result<()> {
    if json {
        return print_json(k);
    }
    println!("access_key={}", k.access_key);
    println!("secret_key={}", k.secret_key);
    println!("tenant={}", k.tenant);
    println!("role={}", k.role);
    eprintln!(
        "The secret is shown only now; store it safely (this output is a valid --credentials-file)."
    );
    Ok(())
}

fn print_key(k: &KeyJson) {
    println!(
        "{:<24} tenant={:<20} role={:<13} {}{}",
        k.access_key,
        k.tenant,
        k.role,
        if k.revoked_ms.is_some() {
            "REVOKED "
        } else {
            ""
        },
        k.description
    );
}

pub async fn key(client: &Client, json: bool, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Create { role, description } => {
            let k = client
                .create_key(None, &role, description.as_deref())
                .await?;
            print_issued(json, &k)?;
        }
        KeyCommand::List => {
            let list = client.list_keys(None).await?;
            if json {
                return print_json(&list);
            }
            for k in &list.keys {
                print_key(k);
            }
        }
        KeyCommand::Rotate { access_key } => {
            let k = client.rotate_key(&access_key).await?;
            print_issued(json, &k)?;
        }
        KeyCommand::Revoke { access_key } => {
            let k = client.revoke_key(&access_key).await?;
            if json {
                return print_json(&k);
            }
            println!("revoked {}", k.access_key);
        }
    }
    Ok(())
}

fn print_plan(p: &crate::http::admin::PlanJson) {
    let q = &p.quotas;
    let v = |n: u64| {
        if n == 0 {
            "unlimited".to_string()
        } else {
            n.to_string()
        }
    };
    println!("plan {}", p.name);
    println!("  requests/s           {}", v(q.requests_per_sec));
    println!("  publish messages/s   {}", v(q.publish_messages_per_sec));
    println!("  publish bytes/s      {}", v(q.publish_bytes_per_sec));
    println!("  consume messages/s   {}", v(q.consume_messages_per_sec));
    println!("  consume bytes/s      {}", v(q.consume_bytes_per_sec));
    println!("  topics               {}", v(q.max_topics));
    println!("  queues               {}", v(q.max_queues));
    println!("  consumer groups      {}", v(q.max_groups));
    println!("  stored bytes         {}", v(q.max_stored_bytes));
}

pub async fn quota(client: &Client, json: bool, cmd: QuotaCommand) -> Result<()> {
    match cmd {
        QuotaCommand::Show { plan: Some(plan) } => {
            let p = client.get_plan(&plan).await?;
            if json {
                return print_json(&p);
            }
            print_plan(&p);
        }
        QuotaCommand::Show { plan: None } => {
            let list = client.list_plans().await?;
            if json {
                return print_json(&list);
            }
            for p in &list.plans {
                print_plan(p);
            }
        }
        QuotaCommand::Set {
            plan,
            requests_per_sec,
            publish_messages_per_sec,
            publish_bytes_per_sec,
            consume_messages_per_sec,
            consume_bytes_per_sec,
            max_topics,
            max_queues,
            max_groups,
            max_stored_bytes,
        } => {
            let mut q = match client.get_plan(&plan).await {
                Ok(p) => p.quotas,
                Err(_) => strata_tenancy::Quotas::DEFAULT,
            };
            let set = |field: &mut u64, v: Option<u64>| {
                if let Some(v) = v {
                    *field = v;
                }
            };
            set(&mut q.requests_per_sec, requests_per_sec);
            set(&mut q.publish_messages_per_sec, publish_messages_per_sec);
            set(&mut q.publish_bytes_per_sec, publish_bytes_per_sec);
            set(&mut q.consume_messages_per_sec, consume_messages_per_sec);
            set(&mut q.consume_bytes_per_sec, consume_bytes_per_sec);
            set(&mut q.max_topics, max_topics);
            set(&mut q.max_queues, max_queues);
            set(&mut q.max_groups, max_groups);
            set(&mut q.max_stored_bytes, max_stored_bytes);
            let p = client.put_plan(&plan, &q).await?;
            if json {
                return print_json(&p);
            }
            print_plan(&p);
        }
    }
    Ok(())
}

pub async fn usage(client: &Client, json: bool, args: UsageArgs) -> Result<()> {
    let mut query = format!("granularity={}", args.granularity);
    let now = strata_common::Clock::now_ms(&strata_common::SystemClock);
    for (name, value) in [("start", &args.start), ("end", &args.end)] {
        if let Some(v) = value {
            query.push_str(&format!("&{name}={}", v.to_ms(now)));
        }
    }
    if args.all_tenants {
        query.push_str("&all_tenants=true");
    }
    let format = if json { "json" } else { args.format.as_str() };
    match format {
        "csv" => {
            print!("{}", client.usage_csv(&query).await?);
            Ok(())
        }
        "json" => print_json(&client.usage(&query).await?),
        _ => {
            let reply = client.usage(&query).await?;
            print_usage_table(&reply);
            Ok(())
        }
    }
}

fn print_usage_table(reply: &crate::http::usage::UsageReply) {
    println!(
        "usage from {} to {} by {}",
        reply.start, reply.end, reply.granularity
    );
    println!(
        "{:<24} {:<24} {:>9} {:>10} {:>12} {:>10} {:>12} {:>8} {:>12} {:>12} {:>6} {:>6}",
        "TENANT",
        "START",
        "REQUESTS",
        "PUB MSGS",
        "PUB BYTES",
        "DEL MSGS",
        "DEL BYTES",
        "REDELIV",
        "HOT GB-H",
        "COLD GB-H",
        "PUTS",
        "GETS"
    );
    let gb_hours = |byte_hours: f64| byte_hours / 1e9;
    let line = |r: &crate::http::usage::UsageRow, start: &str| {
        // A deleted tenant's rows say so: a later tenant may have its name.
        let tenant = match r.tenant_deleted_ms {
            Some(_) => format!("{} (deleted)", r.tenant),
            None => r.tenant.clone(),
        };
        println!(
            "{:<24} {:<24} {:>9} {:>10} {:>12} {:>10} {:>12} {:>8} {:>12.6} {:>12.6} {:>6} {:>6}",
            tenant,
            start,
            r.requests_total,
            r.published_messages,
            r.published_bytes,
            r.delivered_messages,
            r.delivered_bytes,
            r.redeliveries,
            gb_hours(r.hot_byte_hours),
            gb_hours(r.cold_byte_hours),
            r.object_puts,
            r.object_gets
        );
    };
    for r in &reply.usage {
        line(r, &r.start);
    }
    for r in &reply.totals {
        line(r, "TOTAL");
    }
}
