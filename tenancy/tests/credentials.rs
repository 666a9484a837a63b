//! Credentials end to end, against both in-crate metadata backends.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use strata_common::{ErrorCode, ManualClock};
use strata_metadata::catalog::keys;
use strata_metadata::{
    Catalog, MemoryStore, MessageType, MetaStore, NewTopic, RedbStore, Retention,
};
use strata_tenancy::{
    AuthError, Credentials, IssuedKey, MasterKey, Quotas, RELOAD_AFTER_MS, Role, TenancyError,
    format_date_time, sign,
};
use tempfile::TempDir;

const NOW_MS: i64 = 1_795_632_960_000; // 20261125T185600Z
const SKEW_MS: i64 = 5 * 60_000;

struct Fixture {
    credentials: Credentials,
    clock: Arc<ManualClock>,
    dir: TempDir,
}

/// One fixture per backend, each with its own temp dir.
fn fixtures() -> Vec<Fixture> {
    let redb_dir = tempfile::tempdir().unwrap();
    let redb: Arc<dyn MetaStore> = RedbStore::open(&redb_dir.path().join("meta.redb")).unwrap();
    let memory: Arc<dyn MetaStore> = MemoryStore::new();
    [(redb, redb_dir), (memory, tempfile::tempdir().unwrap())]
        .into_iter()
        .map(|(store, dir)| {
            let clock = ManualClock::new(NOW_MS, 1);
            let credentials = Credentials::new(
                Catalog::new(store),
                MasterKey::generate().unwrap(),
                clock.clone(),
            );
            Fixture {
                credentials,
                clock,
                dir,
            }
        })
        .collect()
}

fn bearer(key: &IssuedKey) -> String {
    format!("Bearer {}:{}", key.access_key, key.secret_key.expose())
}

fn hmac_header(key: &IssuedKey, date: &str) -> String {
    format!(
        "MQv2-HMAC-SHA1 Credential={}, SignedHeaders=x-mq-date-time, Signature={}",
        key.access_key,
        sign(&key.secret_key, date)
    )
}

async fn auth(
    c: &Credentials,
    header: &str,
    date: Option<&str>,
) -> Result<strata_tenancy::Principal, AuthError> {
    c.authenticate(Some(header), date, SKEW_MS).await
}

#[tokio::test]
async fn bootstrap_creates_then_is_idempotent() {
    for f in fixtures() {
        let path = f.dir.path().join("admin.credentials");
        let issued = f.credentials.bootstrap(&path).await.unwrap().unwrap();
        assert_eq!(
            (issued.tenant.as_str(), issued.role),
            ("default", Role::Admin)
        );
        let tenant = f.credentials.get_tenant("default").await.unwrap();
        assert_eq!(tenant.plan, "default");

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        assert_eq!(field("access_key"), issued.access_key);
        assert_eq!(field("secret_key"), issued.secret_key.expose());
        assert_eq!(field("tenant"), "default");
        assert_eq!(field("role"), "admin");
        let from_file = format!("Bearer {}:{}", field("access_key"), field("secret_key"));
        let p = auth(&f.credentials, &from_file, None).await.unwrap();
        assert_eq!(p.role, Role::Admin);

        assert!(f.credentials.bootstrap(&path).await.unwrap().is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(f.credentials.list_keys(None).await.unwrap().len(), 1);
        assert_eq!(f.credentials.list_tenants().await.unwrap().len(), 1);
    }
}

/// A credentials file whose key the store lost (a repaired or restored
/// store) is kept aside, not overwritten; one whose key was revoked is
/// replaced.
#[tokio::test]
async fn bootstrap_keeps_a_credentials_file_the_store_does_not_know() {
    for f in fixtures() {
        let path = f.dir.path().join("admin.credentials");
        let lost = "access_key=AKLOST\nsecret_key=s\ntenant=default\nrole=admin\n";
        std::fs::write(&path, lost).unwrap();
        let issued = f.credentials.bootstrap(&path).await.unwrap().unwrap();
        let kept: Vec<_> = std::fs::read_dir(f.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("admin.credentials.replaced-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let kept = f.dir.path().join(&kept[0]);
        assert_eq!(std::fs::read_to_string(kept).unwrap(), lost);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(&issued.access_key)
        );

        // Revoked (straight in the store: revoke_key keeps the last admin
        // key, but a store may hold one revoked before that rule): the
        // next start replaces the file without keeping it.
        let catalog = f.credentials.catalog();
        let old = catalog
            .get_access_key(&issued.access_key)
            .await
            .unwrap()
            .unwrap();
        let mut revoked = old.clone();
        revoked.revoked_ms = Some(NOW_MS);
        revoked.updated_ms = old.updated_ms + 1;
        catalog
            .update_access_key(&old, &revoked, None)
            .await
            .unwrap();
        let next = f.credentials.bootstrap(&path).await.unwrap().unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(&next.access_key)
        );
        let replaced = std::fs::read_dir(f.dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().contains(".replaced-")
            })
            .count();
        assert_eq!(replaced, 1);
    }
}

/// A node starting on metadata whose keys another master key sealed (a
/// shared store, the key file not copied) is refused at once, by name.
#[tokio::test]
async fn bootstrap_refuses_a_master_key_that_does_not_open_the_stored_keys() {
    for f in fixtures() {
        let path = f.dir.path().join("admin.credentials");
        f.credentials.bootstrap(&path).await.unwrap().unwrap();
        let other = Credentials::new(
            f.credentials.catalog().clone(),
            MasterKey::generate().unwrap(),
            f.clock.clone(),
        );
        let err = other.bootstrap(&path).await.unwrap_err().to_string();
        assert!(err.contains("master key does not open"), "{err}");
        assert!(err.contains("auth.master_key_file"), "{err}");
        // The right key still starts.
        assert!(f.credentials.bootstrap(&path).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn bearer_and_hmac_authenticate() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        let key = c
            .create_key("acme", Role::Publisher, "orders service")
            .await
            .unwrap();
        let p = auth(c, &bearer(&key), None).await.unwrap();
        assert_eq!(
            (p.access_key.as_str(), p.tenant.as_str(), p.role),
            (key.access_key.as_str(), "acme", Role::Publisher)
        );
        let date = format_date_time(NOW_MS);
        let p = auth(c, &hmac_header(&key, &date), Some(&date))
            .await
            .unwrap();
        assert_eq!(p.tenant, "acme");
        // Uppercase hex, as the Java client sends it, works too.
        let upper = hmac_header(&key, &date).replace(
            &sign(&key.secret_key, &date),
            &sign(&key.secret_key, &date).to_uppercase(),
        );
        assert!(auth(c, &upper, Some(&date)).await.is_ok());
        // Key details are readable without the secret.
        let info = c.get_key(&key.access_key).await.unwrap();
        assert_eq!(
            (info.role, info.description.as_str()),
            (Role::Publisher, "orders service")
        );
    }
}

#[tokio::test]
async fn failures_give_the_right_variant() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        let key = c.create_key("acme", Role::Consumer, "").await.unwrap();
        let date = format_date_time(NOW_MS);

        let wrong = IssuedKey {
            secret_key: strata_tenancy::SecretKey::new("wrong"),
            ..key.clone()
        };
        let err = auth(c, &hmac_header(&wrong, &date), Some(&date))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        let err = auth(c, &bearer(&wrong), None).await.unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        assert_eq!(err.to_string(), "invalid credentials");
        assert_eq!(err.code(), ErrorCode::Unauthenticated);

        let unknown = IssuedKey {
            access_key: "STRANOSUCHKEY0000000".into(),
            ..key.clone()
        };
        let err = auth(c, &bearer(&unknown), None).await.unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey), "{err:?}");
        assert_eq!(err.to_string(), "invalid credentials");
        let slashed = IssuedKey {
            access_key: "a/b".into(),
            ..key.clone()
        };
        assert!(matches!(
            auth(c, &bearer(&slashed), None).await,
            Err(AuthError::UnknownKey)
        ));

        // The date may be off by up to the skew, in either direction.
        let late = format_date_time(NOW_MS - SKEW_MS - 1_000);
        let err = auth(c, &hmac_header(&key, &late), Some(&late))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::ClockSkew {
                    skew_ms: -301_000,
                    max_ms: SKEW_MS
                }
            ),
            "{err:?}"
        );
        let early = format_date_time(NOW_MS + SKEW_MS + 1_000);
        let err = auth(c, &hmac_header(&key, &early), Some(&early))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::ClockSkew { .. }), "{err:?}");
        let edge = format_date_time(NOW_MS - SKEW_MS);
        assert!(
            auth(c, &hmac_header(&key, &edge), Some(&edge))
                .await
                .is_ok()
        );
        // A date that is not the one signed.
        let other = format_date_time(NOW_MS + 1_000);
        let err = auth(c, &hmac_header(&key, &date), Some(&other))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");

        let err = auth(c, &hmac_header(&key, &date), None).await.unwrap_err();
        assert!(matches!(err, AuthError::MissingDateHeader), "{err:?}");
        let err = auth(c, &hmac_header(&key, &date), Some("2026-11-25"))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
        let err = c
            .authenticate(None, Some(&date), SKEW_MS)
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::MissingCredentials), "{err:?}");
        let err = c.authenticate(Some("  "), None, SKEW_MS).await.unwrap_err();
        assert!(matches!(err, AuthError::MissingCredentials), "{err:?}");
        let err = auth(c, "Basic dXNlcjpwYXNz", None).await.unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
        let header = hmac_header(&key, &date).replace(
            "SignedHeaders=x-mq-date-time",
            "SignedHeaders=host;x-mq-date-time",
        );
        let err = auth(c, &header, Some(&date)).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::UnsupportedSignedHeaders(h) if h.len() == 2),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn revoked_keys_fail_only_once_the_secret_matches() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        let key = c.create_key("acme", Role::Publisher, "").await.unwrap();
        f.clock.advance_ms(10);
        let info = c.revoke_key(&key.access_key).await.unwrap();
        assert_eq!(info.revoked_ms, Some(NOW_MS + 10));
        assert!(matches!(
            auth(c, &bearer(&key), None).await,
            Err(AuthError::Revoked)
        ));
        let wrong = IssuedKey {
            secret_key: strata_tenancy::SecretKey::new("wrong"),
            ..key.clone()
        };
        assert!(matches!(
            auth(c, &bearer(&wrong), None).await,
            Err(AuthError::BadSignature)
        ));
        // Idempotent, and the record is still listed.
        assert_eq!(c.revoke_key(&key.access_key).await.unwrap(), info);
        assert_eq!(c.list_keys(Some("acme")).await.unwrap(), [info]);
        assert!(matches!(
            c.rotate_key(&key.access_key).await,
            Err(TenancyError::KeyRevoked { .. })
        ));
        // Another node, cold cache: revoked too.
        let cold = Credentials::new(
            c.catalog().clone(),
            MasterKey::generate().unwrap(),
            f.clock.clone(),
        );
        assert!(
            matches!(
                auth(&cold, &bearer(&key), None).await,
                Err(AuthError::Store(_))
            ),
            "a different master key cannot open the secret"
        );
    }
}

#[tokio::test]
async fn rotation_takes_effect_at_once() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        let old = c.create_key("acme", Role::TenantAdmin, "").await.unwrap();
        assert!(auth(c, &bearer(&old), None).await.is_ok());
        let new = c.rotate_key(&old.access_key).await.unwrap();
        assert_eq!(new.access_key, old.access_key);
        assert_ne!(new.secret_key.expose(), old.secret_key.expose());
        assert_eq!(new.role, Role::TenantAdmin);
        assert!(auth(c, &bearer(&new), None).await.is_ok());
        assert!(matches!(
            auth(c, &bearer(&old), None).await,
            Err(AuthError::BadSignature)
        ));
        let date = format_date_time(NOW_MS);
        assert!(
            auth(c, &hmac_header(&new, &date), Some(&date))
                .await
                .is_ok()
        );
        assert!(matches!(
            auth(c, &hmac_header(&old, &date), Some(&date)).await,
            Err(AuthError::BadSignature)
        ));
        let info = c.get_key(&old.access_key).await.unwrap();
        assert!(info.updated_ms > info.created_ms);
        assert!(
            matches!(c.rotate_key("STRANOPE").await, Err(e) if e.code() == ErrorCode::KeyNotFound)
        );
    }
}

#[tokio::test]
async fn other_nodes_see_changes_after_the_cache_ttl() {
    for f in fixtures() {
        let master = MasterKey::generate().unwrap();
        let node = |ttl| {
            Credentials::with_cache_ttl_ms(
                f.credentials.catalog().clone(),
                master.clone(),
                f.clock.clone(),
                ttl,
            )
        };
        let (a, b) = (node(1_000), node(1_000));
        a.create_tenant("acme", "default").await.unwrap();
        let key = a.create_key("acme", Role::Publisher, "").await.unwrap();
        assert!(auth(&b, &bearer(&key), None).await.is_ok());
        a.revoke_key(&key.access_key).await.unwrap();
        // b still trusts its cached entry until it expires.
        assert!(auth(&b, &bearer(&key), None).await.is_ok());
        f.clock.advance_ms(1_000);
        assert!(matches!(
            auth(&b, &bearer(&key), None).await,
            Err(AuthError::Revoked)
        ));
    }
}

/// A secret rotated on one node works on the others at once, not only once
/// their cached copy expires: a mismatch reads the key again, at most once
/// a second per key, so wrong secrets cannot make every request a read.
#[tokio::test]
async fn a_rotated_secret_works_on_other_nodes_within_a_second() {
    for f in fixtures() {
        let master = MasterKey::generate().unwrap();
        let node = || {
            Credentials::with_cache_ttl_ms(
                f.credentials.catalog().clone(),
                master.clone(),
                f.clock.clone(),
                10_000,
            )
        };
        let (a, b) = (node(), node());
        a.create_tenant("acme", "default").await.unwrap();
        let old = a.create_key("acme", Role::Publisher, "").await.unwrap();
        assert!(auth(&b, &bearer(&old), None).await.is_ok(), "b caches it");
        let new = a.rotate_key(&old.access_key).await.unwrap();
        // Read again by a mismatch only once the copy is a second old.
        f.clock.advance_ms(RELOAD_AFTER_MS - 1);
        assert!(matches!(
            auth(&b, &bearer(&new), None).await,
            Err(AuthError::BadSignature)
        ));
        f.clock.advance_ms(1);
        let date = "20261125T185600Z";
        for header in [bearer(&new), hmac_header(&new, date)] {
            let who = auth(&b, &header, Some(date)).await.unwrap();
            assert_eq!(who.tenant, "acme");
        }
        // The old secret is refused once the key was read again.
        assert!(matches!(
            auth(&b, &bearer(&old), None).await,
            Err(AuthError::BadSignature)
        ));
    }
}

#[tokio::test]
async fn sealed_secret_in_the_store_is_not_the_plaintext() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        let key = c.create_key("acme", Role::Consumer, "").await.unwrap();
        let raw = c
            .catalog()
            .store()
            .get(&keys::access_key(&key.access_key).unwrap())
            .await
            .unwrap()
            .unwrap();
        let raw = String::from_utf8(raw).unwrap();
        assert!(raw.contains("ciphertext_hex"), "{raw}");
        assert!(!raw.contains(key.secret_key.expose()), "{raw}");
        let secret_hex: String = key
            .secret_key
            .expose()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!raw.contains(&secret_hex), "{raw}");
        assert!(!format!("{key:?}").contains(key.secret_key.expose()));
    }
}

#[tokio::test]
async fn deleted_tenants_keys_stop_authenticating() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        let key = c.create_key("acme", Role::Publisher, "").await.unwrap();
        assert!(auth(c, &bearer(&key), None).await.is_ok());
        c.catalog()
            .create_topic(
                "acme",
                "orders",
                NewTopic {
                    queues: 1,
                    message_type: MessageType::Normal,
                    retention: Retention::Unlimited,
                    retention_bytes: None,
                },
                NOW_MS,
            )
            .await
            .unwrap();
        let err = c.delete_tenant("acme").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TenantNotEmpty);
        assert!(auth(c, &bearer(&key), None).await.is_ok());
        c.catalog().delete_topic("acme", "orders").await.unwrap();
        c.delete_tenant("acme").await.unwrap();
        assert!(matches!(
            auth(c, &bearer(&key), None).await,
            Err(AuthError::UnknownKey)
        ));
        assert!(
            matches!(c.get_tenant("acme").await, Err(e) if e.code() == ErrorCode::TenantNotFound)
        );
        assert!(
            matches!(c.get_key(&key.access_key).await, Err(e) if e.code() == ErrorCode::KeyNotFound)
        );
    }
}

#[tokio::test]
async fn tenant_and_key_management() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("acme", "default").await.unwrap();
        c.create_tenant("acme-2", "unlimited").await.unwrap();
        assert_eq!(
            c.create_tenant("acme", "default").await.unwrap_err().code(),
            ErrorCode::TenantAlreadyExists
        );
        assert_eq!(
            c.create_tenant("a/b", "default").await.unwrap_err().code(),
            ErrorCode::InvalidName
        );
        assert_eq!(
            c.create_tenant("ok", "").await.unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            c.create_key("nope", Role::Admin, "")
                .await
                .unwrap_err()
                .code(),
            ErrorCode::TenantNotFound
        );
        assert_eq!(
            c.create_key("acme", Role::Admin, &"x".repeat(257))
                .await
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
        for two_lines in ["a\nb", "a\u{0}b", "a\tb"] {
            assert_eq!(
                c.create_key("acme", Role::Admin, two_lines)
                    .await
                    .unwrap_err()
                    .code(),
                ErrorCode::InvalidArgument
            );
        }
        let a1 = c.create_key("acme", Role::Publisher, "a1").await.unwrap();
        let a2 = c.create_key("acme", Role::Consumer, "a2").await.unwrap();
        let b1 = c
            .create_key("acme-2", Role::TenantAdmin, "b1")
            .await
            .unwrap();

        let mut expected = vec![a1.access_key.clone(), a2.access_key.clone()];
        expected.sort();
        let listed: Vec<_> = c
            .list_keys(Some("acme"))
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.access_key)
            .collect();
        assert_eq!(listed, expected);
        let listed = c.list_keys(Some("acme-2")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].access_key.as_str(), listed[0].role),
            (b1.access_key.as_str(), Role::TenantAdmin)
        );
        assert_eq!(c.list_keys(None).await.unwrap().len(), 3);
        assert!(c.list_keys(Some("nope")).await.unwrap().is_empty());
        let names: Vec<_> = c
            .list_tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["acme", "acme-2"]);
        // KeyInfo serializes without any secret material.
        let json = serde_json::to_string(&c.get_key(&a1.access_key).await.unwrap()).unwrap();
        assert!(
            !json.contains(a1.secret_key.expose()) && !json.contains("sealed"),
            "{json}"
        );
    }
}

#[tokio::test]
async fn plans_and_quotas() {
    for f in fixtures() {
        let c = &f.credentials;
        let pro = Quotas {
            requests_per_sec: 5,
            max_topics: 3,
            ..Quotas::DEFAULT
        };

        // Built-ins exist without being stored; unknown plans do not.
        assert_eq!(c.get_plan("default").await.unwrap(), Quotas::DEFAULT);
        assert_eq!(c.get_plan("unlimited").await.unwrap(), Quotas::UNLIMITED);
        let err = c.get_plan("pro").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::PlanNotFound);
        assert!(matches!(&err, TenancyError::PlanNotFound { name } if name == "pro"));
        assert_eq!(
            c.get_plan("a/b").await.unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        let err = c.create_tenant("acme", "pro").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::PlanNotFound);
        assert!(err.to_string().contains("pro"), "{err}");
        assert!(c.catalog().get_tenant("acme").await.unwrap().is_none());

        // Stored plans.
        assert_eq!(
            c.set_plan("a/b", pro).await.unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        c.set_plan("pro", pro).await.unwrap();
        assert_eq!(c.get_plan("pro").await.unwrap(), pro);
        let names: Vec<_> = c
            .list_plans()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["default", "pro", "unlimited"]);

        // A tenant's quotas come from its plan.
        c.create_tenant("acme", "pro").await.unwrap();
        c.create_tenant("beta", "default").await.unwrap();
        assert_eq!(c.quotas_for("acme").await.unwrap(), pro);
        assert_eq!(c.quotas_for("beta").await.unwrap(), Quotas::DEFAULT);
        assert_eq!(
            c.quotas_for("nope").await.unwrap_err().code(),
            ErrorCode::TenantNotFound
        );

        // Local changes apply at once.
        c.set_tenant_plan("beta", "unlimited").await.unwrap();
        assert_eq!(c.quotas_for("beta").await.unwrap(), Quotas::UNLIMITED);
        assert_eq!(c.get_tenant("beta").await.unwrap().plan, "unlimited");
        assert_eq!(
            c.set_tenant_plan("beta", "gold").await.unwrap_err().code(),
            ErrorCode::PlanNotFound
        );
        assert_eq!(
            c.set_tenant_plan("nope", "default")
                .await
                .unwrap_err()
                .code(),
            ErrorCode::TenantNotFound
        );
        let pro2 = Quotas {
            max_topics: 9,
            ..pro
        };
        c.set_plan("pro", pro2).await.unwrap();
        assert_eq!(c.quotas_for("acme").await.unwrap(), pro2);

        // A stored plan overrides a built-in one of the same name.
        let small = Quotas {
            requests_per_sec: 1,
            ..Quotas::DEFAULT
        };
        c.set_plan("unlimited", small).await.unwrap();
        assert_eq!(c.get_plan("unlimited").await.unwrap(), small);
        assert_eq!(c.quotas_for("beta").await.unwrap(), small);
        let plans = c.list_plans().await.unwrap();
        assert_eq!(plans.len(), 3);
        assert_eq!(plans[2], ("unlimited".to_string(), small));

        // Changes behind the cache (another node) show once it expires.
        assert_eq!(c.quotas_for("acme").await.unwrap(), pro2);
        let store = c.catalog().clone();
        store
            .put_plan("pro", &serde_json::to_value(pro).unwrap())
            .await
            .unwrap();
        assert_eq!(c.quotas_for("acme").await.unwrap(), pro2);
        f.clock.advance_ms(4_999);
        assert_eq!(c.quotas_for("acme").await.unwrap(), pro2);
        f.clock.advance_ms(1);
        assert_eq!(c.quotas_for("acme").await.unwrap(), pro);
        store.set_tenant_plan("acme", "default").await.unwrap();
        f.clock.advance_ms(5_000);
        assert_eq!(c.quotas_for("acme").await.unwrap(), Quotas::DEFAULT);

        // A tenant on a plan that has vanished, and a corrupt stored plan.
        store.set_tenant_plan("acme", "gone").await.unwrap();
        f.clock.advance_ms(5_000);
        let err = c.quotas_for("acme").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("gone"), "{err}");
        store
            .put_plan("bad", &serde_json::json!({"max_topic": 1}))
            .await
            .unwrap();
        let err = c.get_plan("bad").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Internal);
        assert!(err.to_string().contains("plan/bad"), "{err}");
        assert!(c.list_plans().await.is_err());
        store.set_tenant_plan("acme", "bad").await.unwrap();
        f.clock.advance_ms(5_000);
        assert_eq!(
            c.quotas_for("acme").await.unwrap_err().code(),
            ErrorCode::Internal
        );

        // Deleting a tenant forgets its quotas.
        c.delete_tenant("beta").await.unwrap();
        assert_eq!(
            c.quotas_for("beta").await.unwrap_err().code(),
            ErrorCode::TenantNotFound
        );
    }
}

/// No revocation or tenant deletion may leave the service without an
/// active service-admin key: nobody could manage it until a restart made
/// a new bootstrap key. With another admin key, both go through.
#[tokio::test]
async fn the_last_service_admin_key_stays() {
    for f in fixtures() {
        let c = &f.credentials;
        c.create_tenant("ops", "default").await.unwrap();
        let only = c.create_key("ops", Role::Admin, "").await.unwrap();
        let refused = c.revoke_key(&only.access_key).await.unwrap_err();
        assert!(
            matches!(refused, TenancyError::LastServiceAdmin { .. }),
            "{refused}"
        );
        assert_eq!(refused.code(), ErrorCode::Conflict);
        let refused = c.delete_tenant("ops").await.unwrap_err();
        assert!(
            matches!(refused, TenancyError::LastServiceAdmin { .. }),
            "{refused}"
        );
        assert!(auth(c, &bearer(&only), None).await.is_ok(), "still works");

        c.create_tenant("ops2", "default").await.unwrap();
        let other = c.create_key("ops2", Role::Admin, "").await.unwrap();
        c.revoke_key(&only.access_key).await.unwrap();
        c.delete_tenant("ops").await.unwrap();
        assert!(auth(c, &bearer(&other), None).await.is_ok());
    }
}

/// Makes a store's first two commits wait for each other: two changes that
/// both counted the keys before either committed.
#[derive(Debug)]
struct CommitsMeet {
    commits: std::sync::atomic::AtomicUsize,
    meet: tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl strata_metadata::CommitHook for CommitsMeet {
    async fn before_commit(
        &self,
        _: &Arc<dyn MetaStore>,
        _: &strata_metadata::Txn,
    ) -> Result<(), strata_metadata::MetaError> {
        if self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            < 2
        {
            self.meet.wait().await;
        }
        Ok(())
    }
}

/// Two service-admin keys revoking each other at once: one goes through,
/// the other is refused (a black-box run revoked both, leaving none).
#[tokio::test]
async fn concurrent_revocations_leave_a_service_admin_key() {
    let catalog = Catalog::new(MemoryStore::new());
    let c = Credentials::new(
        catalog.clone(),
        MasterKey::generate().unwrap(),
        ManualClock::new(NOW_MS, 1),
    );
    c.create_tenant("ops", "default").await.unwrap();
    let a = c.create_key("ops", Role::Admin, "").await.unwrap();
    let b = c.create_key("ops", Role::Admin, "").await.unwrap();
    let store = strata_metadata::HookedStore::new(
        catalog.store().clone(),
        CommitsMeet {
            commits: Default::default(),
            meet: tokio::sync::Barrier::new(2),
        },
    );
    let racing = Credentials::new(
        Catalog::new(store),
        MasterKey::generate().unwrap(),
        ManualClock::new(NOW_MS, 1),
    );
    let (ra, rb) = tokio::join!(
        racing.revoke_key(&a.access_key),
        racing.revoke_key(&b.access_key)
    );
    let refused: Vec<_> = [ra, rb].into_iter().filter_map(Result::err).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        matches!(refused[0], TenancyError::LastServiceAdmin { .. }),
        "{}",
        refused[0]
    );
    let active = c
        .list_keys(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.role == Role::Admin && k.revoked_ms.is_none())
        .count();
    assert_eq!(active, 1);
}

/// Reads and commits never answer while `stalled` is set: an etcd without
/// quorum, which answers only after its timeouts.
#[derive(Debug, Default)]
struct Stalled {
    stalled: std::sync::atomic::AtomicBool,
}

impl Stalled {
    async fn wait_if_stalled(&self) {
        if self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl strata_metadata::CommitHook for Stalled {
    async fn before_commit(
        &self,
        _: &Arc<dyn MetaStore>,
        _: &strata_metadata::Txn,
    ) -> Result<(), strata_metadata::MetaError> {
        self.wait_if_stalled().await;
        Ok(())
    }

    async fn before_read(&self) -> Result<(), strata_metadata::MetaError> {
        self.wait_if_stalled().await;
        Ok(())
    }
}

/// Runs `f` while moving `clock` on by `step_ms` until it ends (each
/// refresh of a stale entry waits one second of the clock).
async fn with_clock_moving<T>(
    clock: &ManualClock,
    step_ms: i64,
    f: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(f);
    loop {
        tokio::select! {
            biased;
            out = &mut f => return out,
            () = tokio::task::yield_now() => clock.advance_ms(step_ms),
        }
    }
}

#[tokio::test]
async fn keys_and_plans_read_before_a_store_outage_keep_serving_within_the_limit() {
    use std::sync::atomic::Ordering;
    use strata_tenancy::{OUTAGE_BACKOFF_MS, STALE_LIMIT_MS};

    let store = strata_metadata::HookedStore::new(MemoryStore::new(), Stalled::default());
    let clock = ManualClock::new(NOW_MS, 1);
    let c = Credentials::new(
        Catalog::new(store.clone()),
        MasterKey::generate().unwrap(),
        clock.clone(),
    );
    c.create_tenant("acme", "default").await.unwrap();
    let key = c.create_key("acme", Role::Admin, "").await.unwrap();
    let unread = c.create_key("acme", Role::Admin, "").await.unwrap();
    let header = bearer(&key);
    auth(&c, &header, None).await.unwrap();
    let quotas = c.quotas_for("acme").await.unwrap();

    store.hook().stalled.store(true, Ordering::SeqCst);
    clock.advance_ms(60_000);
    // Expired, refreshed in vain for a second, then used as read.
    let who = with_clock_moving(&clock, 100, auth(&c, &header, None))
        .await
        .unwrap();
    assert_eq!(who.tenant, "acme");
    assert_eq!(
        with_clock_moving(&clock, 100, c.quotas_for("acme"))
            .await
            .unwrap(),
        quotas
    );
    // Within the backoff nothing waits on the store: these end without
    // the clock moving.
    auth(&c, &header, None).await.unwrap();
    c.quotas_for("acme").await.unwrap();
    // A secret that matches no held key is not waited on: it may be one
    // rotated elsewhere, so the store's outage is what the caller hears.
    let wrong = format!("Bearer {}:{}", key.access_key, "x".repeat(40));
    assert!(matches!(
        auth(&c, &wrong, None).await,
        Err(AuthError::StoreUnavailable)
    ));
    clock.advance_ms(OUTAGE_BACKOFF_MS);
    with_clock_moving(&clock, 100, auth(&c, &header, None))
        .await
        .unwrap();

    // Past the limit the key is not used: the request waits on the store.
    clock.advance_ms(STALE_LIMIT_MS);
    let expired = auth(&c, &header, None);
    tokio::pin!(expired);
    for _ in 0..20 {
        assert!(futures::poll!(&mut expired).is_pending());
        clock.advance_ms(1_000);
        tokio::task::yield_now().await;
    }
    // Nor is a key this node never read.
    let unread_header = bearer(&unread);
    let never = auth(&c, &unread_header, None);
    tokio::pin!(never);
    assert!(futures::poll!(&mut never).is_pending());

    // Back: both are read again.
    store.hook().stalled.store(false, Ordering::SeqCst);
    auth(&c, &header, None).await.unwrap();
    auth(&c, &bearer(&unread), None).await.unwrap();
}
