//! Tenant ids, read from the `X-Scope-OrgID` header as in Mimir.

/// The HTTP header carrying the tenant id.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";
/// The tenant used for everything when multitenancy is disabled.
pub const ANONYMOUS: &str = "anonymous";
/// Longest tenant id accepted, as in Mimir.
pub const MAX_TENANT_ID_LENGTH: usize = 150;

/// Why a tenant id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantError {
    #[error("no org id: the {ORG_ID_HEADER} header is required when multitenancy is enabled (err-strata-missing-org-id); to accept requests without it, set -auth.multitenancy-enabled=false")]
    Missing,
    #[error("tenant id is too long: {0} characters, the limit is {MAX_TENANT_ID_LENGTH} (err-strata-invalid-tenant-id)")]
    TooLong(usize),
    #[error("tenant id {0:?} is not allowed: '.' and '..' cannot be tenant ids (err-strata-invalid-tenant-id)")]
    Unsafe(String),
    #[error("tenant id {id:?} contains the unsupported character {character:?}: allowed are letters, digits and !-_.*'() (err-strata-invalid-tenant-id)")]
    BadCharacter { id: String, character: char },
}

/// Checks a tenant id the way Mimir does: it becomes a path element in object storage, so
/// only a small, path-safe alphabet is allowed.
pub fn validate_tenant_id(id: &str) -> Result<(), TenantError> {
    if id.is_empty() {
        return Err(TenantError::Missing);
    }
    if id.len() > MAX_TENANT_ID_LENGTH {
        return Err(TenantError::TooLong(id.len()));
    }
    if id == "." || id == ".." {
        return Err(TenantError::Unsafe(id.to_string()));
    }
    if let Some(character) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
    {
        return Err(TenantError::BadCharacter {
            id: id.to_string(),
            character,
        });
    }
    Ok(())
}

/// Resolves the tenant of a request from its header value.
pub fn resolve_tenant(
    header: Option<&str>,
    multitenancy_enabled: bool,
) -> Result<String, TenantError> {
    if !multitenancy_enabled {
        return Ok(ANONYMOUS.to_string());
    }
    let id = header.map(str::trim).unwrap_or("");
    validate_tenant_id(id)?;
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_rules() {
        assert_eq!(resolve_tenant(None, false).as_deref(), Ok(ANONYMOUS));
        assert_eq!(resolve_tenant(None, true), Err(TenantError::Missing));
        assert_eq!(
            resolve_tenant(Some("team-a"), true).as_deref(),
            Ok("team-a")
        );
        assert!(matches!(
            resolve_tenant(Some("a/b"), true),
            Err(TenantError::BadCharacter { character: '/', .. })
        ));
        assert!(matches!(
            resolve_tenant(Some(".."), true),
            Err(TenantError::Unsafe(_))
        ));
        assert!(matches!(
            resolve_tenant(Some(&"x".repeat(151)), true),
            Err(TenantError::TooLong(151))
        ));
    }
}
