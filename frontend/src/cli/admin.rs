//! `strata tenant ...` and `strata key ...`.

use anyhow::Result;

use super::run::print_json;
use super::{KeyCommand, TenantCommand};
use crate::client::Client;
use crate::http::admin::{IssuedKeyJson, KeyJson};

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
