//! EDUs received in transactions (spec: Server-Server API, "EDUs"). Placeholder: logged only.

use ruma::ServerName;

use crate::error::Result;
use crate::services::State;

/// Handle one EDU from `origin`.
pub async fn handle(_s: &State, origin: &ServerName, edu: serde_json::Value) -> Result<()> {
    tracing::debug!(%origin, edu_type = edu.get("edu_type").and_then(|t| t.as_str()).unwrap_or(""), "EDU received");
    Ok(())
}
