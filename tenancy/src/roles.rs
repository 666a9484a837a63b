//! Roles and the permissions each one grants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an access key may do. Every key has exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The service operator: every permission, across all tenants.
    Admin,
    /// Manages one tenant: everything except [`Permission::ManageService`].
    TenantAdmin,
    /// Producers: publish and describe.
    Publisher,
    /// Consumers: consume and describe.
    Consumer,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::TenantAdmin,
        Role::Publisher,
        Role::Consumer,
    ];

    /// The wire name, used in APIs, config, credentials files and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Publisher => "publisher",
            Role::Consumer => "consumer",
        }
    }

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::TenantAdmin => permission != ManageService,
            Role::Publisher => matches!(permission, Publish | Describe),
            Role::Consumer => matches!(permission, Consume | Describe),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`Role`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; allowed values: admin, tenant-admin, publisher, consumer")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // "tenant_admin" too, because people write it that way in env vars
        // and config keys, where '-' is awkward.
        if s == "tenant_admin" {
            return Ok(Role::TenantAdmin);
        }
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseRoleError(s.to_string()))
    }
}

/// An operation class checked against a caller's [`Role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Service-wide operations: tenants, plans, node status, metrics, and
    /// any tenant's usage.
    ManageService,
    /// The caller's own tenant: its access keys, creating and deleting its
    /// topics and groups, and its own usage.
    ManageTenant,
    /// Publishing messages.
    Publish,
    /// Reading messages, committing and reading offsets, describing groups.
    Consume,
    /// Listing and describing topics and queues.
    Describe,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 5] = [
        Permission::ManageService,
        Permission::ManageTenant,
        Permission::Publish,
        Permission::Consume,
        Permission::Describe,
    ];

    /// The name used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ManageService => "manage-service",
            Permission::ManageTenant => "manage-tenant",
            Permission::Publish => "publish",
            Permission::Consume => "consume",
            Permission::Describe => "describe",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_matrix() {
        use Permission::*;
        // Columns: ManageService, ManageTenant, Publish, Consume, Describe.
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::TenantAdmin, [false, true, true, true, true]),
            (Role::Publisher, [false, false, true, false, true]),
            (Role::Consumer, [false, false, false, true, true]),
        ];
        assert_eq!(
            Permission::ALL,
            [ManageService, ManageTenant, Publish, Consume, Describe]
        );
        for (role, row) in table {
            for (permission, expected) in Permission::ALL.into_iter().zip(row) {
                assert_eq!(role.allows(permission), expected, "{role} {permission}");
            }
        }
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!("tenant_admin".parse::<Role>().unwrap(), Role::TenantAdmin);
        let err = "root".parse::<Role>().unwrap_err().to_string();
        assert!(
            err.contains("admin, tenant-admin, publisher, consumer"),
            "{err}"
        );
        assert!("Admin".parse::<Role>().is_err());
    }
}
