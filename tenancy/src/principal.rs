//! The authenticated caller.

use crate::error::AuthError;
use crate::roles::{Permission, Role};

/// Who a request comes from, once its credentials have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub access_key: String,
    pub tenant: String,
    pub role: Role,
}

impl Principal {
    /// Ok if the role grants `permission`, else [`AuthError::PermissionDenied`].
    /// Whether the target belongs to `self.tenant` is the caller's check:
    /// only it knows which tenant an operation touches.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied {
                role: self.role,
                permission,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_names_role_and_permission() {
        let p = Principal {
            access_key: "STRAX".into(),
            tenant: "acme".into(),
            role: Role::Publisher,
        };
        assert!(p.require(Permission::Publish).is_ok());
        let err = p.require(Permission::Consume).unwrap_err();
        assert!(matches!(
            err,
            AuthError::PermissionDenied {
                role: Role::Publisher,
                permission: Permission::Consume
            }
        ));
        assert_eq!(err.to_string(), "role publisher does not allow consume");
    }
}
