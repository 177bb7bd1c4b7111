//! How Tao reaches TAPD: the API base and the credentials (`TAO_TAPD_*`), used by
//! `crate::workitems::tapd`'s client.

use super::Secret;

/// TAPD's API base URL.
pub const DEFAULT_URL: &str = "https://api.tapd.cn";

/// How Tao signs in to TAPD.
#[derive(Debug, Clone)]
pub enum TapdAuth {
    /// An API account (`api_user:api_password`), HTTP Basic.
    Basic {
        /// API user.
        user: String,
        /// API password.
        password: Secret,
    },
    /// A personal access token or an OAuth app token (`Authorization: Bearer`).
    Bearer(Secret),
}
