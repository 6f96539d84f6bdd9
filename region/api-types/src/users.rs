//! Users, API tokens (with their scopes) and logins.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub created_at: String,
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$", example = "alice")]
    pub username: String,
    /// 8 to 1024 bytes.
    #[schema(min_length = 8, max_length = 1024, format = Password)]
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// What a token may do, never more than its user: `read` (look at all its user may see, change
/// nothing: every write is 403), `operator` (what a non-admin user may do), `admin` (everything, for administrators).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Operator,
    Admin,
}

impl TokenScope {
    pub const ALL: [TokenScope; 3] = [TokenScope::Read, TokenScope::Operator, TokenScope::Admin];

    pub fn as_str(&self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Operator => "operator",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The most a user may have: `admin` for administrators, else `operator`.
    pub fn of_user(is_admin: bool) -> TokenScope {
        if is_admin {
            TokenScope::Admin
        } else {
            TokenScope::Operator
        }
    }
}

/// An API token (the secret itself is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub username: String,
    /// First characters of the token, to tell tokens apart.
    pub prefix: String,
    /// What the token may do now (its scope, capped by what its user may do).
    pub scope: TokenScope,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// When the token stops working (RFC 3339); none: until revoked.
    pub expires_at: Option<String>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// A label: 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// What the token may do (default: all its user may). Never more than the credential that
    /// creates it: an operator-scoped token cannot make an admin one.
    #[serde(default)]
    pub scope: Option<TokenScope>,
    /// When the token stops working, RFC 3339 (`2027-01-31T00:00:00Z`), in the future; none: until
    /// revoked.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub token: Token,
    /// The bearer token. Store it now: Kiln keeps only its hash.
    pub secret: String,
}

/// Body of `POST /api/v1/login` (the UI's cookie session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}
