//! The audit log: one JSON line per login, push, tag move, mount and delete (allowed or
//! refused), on the `wharf::audit` log target and, when configured, appended to a file.

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Where audit records go.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    file: Option<Mutex<std::fs::File>>,
}

impl Audit {
    /// Appends to `path` (created with mode 0600 when missing).
    pub(crate) fn to_file(path: &Path) -> Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .map_err(|e| Error::BadRequest(format!("audit log {}: {e}", path.display())))?;
        Ok(Self { file: Some(Mutex::new(file)) })
    }

    /// Records a login — of `user`, from `client`, by `grant` (`basic`, `web`, `password`,
    /// `refresh_token`, …) — that went through or was refused (`Err` with why), with `more`
    /// fields (a token's scopes): the one shape every login record has.
    pub(crate) fn login(
        &self,
        user: &str,
        client: Option<std::net::IpAddr>,
        grant: &str,
        outcome: std::result::Result<(), String>,
        more: serde_json::Value,
    ) {
        let (result, reason) = match outcome {
            Ok(()) => ("ok", None),
            Err(why) => ("refused", Some(why)),
        };
        let mut fields = serde_json::json!({
            "identity": crate::text::printable(user, 256),
            "client": client.map(|c| c.to_string()),
            "grant": grant,
            "result": result,
            "reason": reason,
        });
        if let (Some(map), serde_json::Value::Object(more)) = (fields.as_object_mut(), more) {
            map.extend(more);
        }
        self.record("login", fields);
    }

    /// Records an event: `fields` are added to the time and the event name.
    pub(crate) fn record(&self, event: &str, fields: serde_json::Value) {
        let mut record = serde_json::json!({
            "time": crate::clock::now_rfc3339(),
            "event": event,
        });
        if let (Some(map), serde_json::Value::Object(more)) = (record.as_object_mut(), fields) {
            map.extend(more);
        }
        let line = record.to_string();
        tracing::info!(target: "wharf::audit", "{line}");
        if let Some(file) = &self.file {
            let mut file = file.lock().expect("lock");
            if let Err(e) = writeln!(file, "{line}") {
                tracing::error!(error = %e, "writing the audit log failed");
            }
        }
    }
}
