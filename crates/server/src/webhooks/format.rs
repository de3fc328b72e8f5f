//! Events on the wire: CloudEvents 1.0 in structured mode, or distribution's notification
//! envelope; both signed the Standard Webhooks way when the webhook has a secret.

use base64::Engine as _;
use serde_json::{Value, json};

use super::event::{Event, EventKind, Format};

/// The content type of a format.
pub(crate) fn content_type(format: Format) -> &'static str {
    match format {
        Format::CloudEvents => "application/cloudevents+json; charset=utf-8",
        Format::Distribution => "application/vnd.docker.distribution.events.v1+json",
    }
}

/// The CloudEvents `type` of a kind: `dev.wharf.manifest.pushed`.
pub(crate) fn cloudevents_type(kind: EventKind) -> String {
    format!("dev.wharf.{}", kind.name())
}

/// The body of `event` in `format`; `source` is the registry's public URL (or empty) and
/// `wasm` what the artifact record says of the Wasm inside, when it does.
pub(crate) fn body(
    format: Format,
    event: &Event,
    source: &str,
    wasm: Option<&Value>,
    process: &str,
) -> Vec<u8> {
    let value = match format {
        Format::CloudEvents => cloudevent(event, source, wasm),
        Format::Distribution => envelope(event, source, process),
    };
    serde_json::to_vec(&value).expect("JSON serialises")
}

/// What the event says, as CloudEvents `data`.
fn data(event: &Event, wasm: Option<&Value>) -> Value {
    let mut data = json!({
        "repository": event.repository.as_ref().map(ToString::to_string),
        "tag": event.tag,
        "digest": event.digest.as_ref().map(ToString::to_string),
        "previousDigest": event.previous.as_ref().map(ToString::to_string),
        "mediaType": event.media_type,
        "artifactType": event.artifact_type,
        "size": event.size,
        "action": event.action,
        "reason": event.reason,
        "actor": { "name": event.origin.actor.name, "kind": event.origin.actor.kind },
        "client": event.origin.client.map(|c| c.to_string()),
        "requestId": event.origin.request_id,
        "detail": event.detail,
        "wasm": wasm,
    });
    if let Some(map) = data.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    data
}

fn subject(event: &Event) -> Option<String> {
    let repo = event.repository.as_ref()?;
    Some(match (&event.tag, &event.digest) {
        (Some(tag), _) => format!("{repo}:{tag}"),
        (None, Some(d)) => format!("{repo}@{d}"),
        (None, None) => repo.to_string(),
    })
}

fn cloudevent(event: &Event, source: &str, wasm: Option<&Value>) -> Value {
    let source = match &event.repository {
        Some(repo) => format!("{source}/v2/{repo}"),
        None => format!("{source}/v2/"),
    };
    let mut value = json!({
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": cloudevents_type(event.kind),
        "time": event.time,
        "datacontenttype": "application/json",
        "data": data(event, wasm),
    });
    if let Some(subject) = subject(event) {
        value["subject"] = json!(subject);
    }
    value
}

/// distribution's envelope (`notifications.Envelope`): one event.
fn envelope(event: &Event, source: &str, process: &str) -> Value {
    let action = event.kind.distribution_action().unwrap_or("push");
    let repo = event.repository.as_ref().map(ToString::to_string).unwrap_or_default();
    let url = event.digest.as_ref().map(|d| format!("{source}/v2/{repo}/manifests/{d}"));
    let method = match action {
        "delete" => "DELETE",
        "pull" => "GET",
        _ => "PUT",
    };
    let host = source.split_once("://").map_or(source, |(_, rest)| rest);
    json!({ "events": [{
        "id": event.id,
        "timestamp": event.time,
        "action": action,
        "target": {
            "mediaType": event.media_type,
            "digest": event.digest.as_ref().map(ToString::to_string),
            "size": event.size,
            "length": event.size,
            "repository": repo,
            "url": url,
            "tag": event.tag,
        },
        "request": {
            "id": event.origin.request_id,
            "addr": event.origin.client.map(|c| c.to_string()),
            "host": host,
            "method": method,
        },
        "actor": { "name": event.origin.actor.name },
        "source": { "addr": host, "instanceID": process },
    }]})
}

/// `webhook-signature`: `v1,` and the base64 of HMAC-SHA256 over `<id>.<timestamp>.<body>`
/// (Standard Webhooks).
pub(crate) fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut context = aws_lc_rs::hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(context.sign().as_ref()))
}

/// The Wasm fields of an event from an artifact record: the layout, the binary's kind, WASI,
/// and the WIT world's imports and exports (at most [`super::event::MAX_LISTED`] each);
/// `None` for an artifact that is not Wasm.
pub(crate) fn wasm_fields(record: &Value) -> Option<Value> {
    if record["wasm"].as_bool() != Some(true) {
        return None;
    }
    let module = &record["module"];
    let names = |list: &Value| -> Option<Vec<String>> {
        let items = list.as_array()?;
        Some(
            items
                .iter()
                .filter_map(|e| e["name"].as_str().map(|n| crate::text::cut(n, 256)))
                .take(super::event::MAX_LISTED)
                .collect(),
        )
    };
    let world = &module["world"];
    let mut wasm = json!({
        "layout": record["kind"],
        "format": record["format"],
        "inspection": record["inspection"]["status"],
        "kind": module["header"]["kind"],
        "wasi": module["wasi"],
        "wasiVersion": module["wasiVersion"],
        "world": world["name"],
        "exports": names(&world["exports"]),
        "imports": names(&world["imports"]),
    });
    if let Some(map) = wasm.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    Some(wasm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_standard_webhooks() {
        // The Standard Webhooks reference vector (libraries' own tests).
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
