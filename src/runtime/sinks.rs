//! Sinks: deliver one encoded copy to one destination and classify the answer. Sinks never
//! loop, sleep or dead-letter; the delivery worker owns retries (Vector's rule).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::broker::{self, Outgoing};
use crate::config::Destination;
use crate::config::raw::HttpSinkConfig;

/// One copy to deliver.
#[derive(Debug, Clone)]
pub struct Copy<'a> {
    pub destination: &'a str,
    pub idempotency_key: &'a str,
    pub record_key: &'a str,
    pub catalog_item: &'a str,
    pub operation: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkOutcome {
    /// The destination accepted it; its answer is kept as the delivery receipt.
    Delivered { response: String },
    /// Try again later (timeouts, 5xx, 429, broker nack, connection errors).
    Retriable { reason: String, response: String },
    /// Will never succeed as is (4xx, "2xx with an error body" naming a data error).
    Permanent { reason: String, response: String },
}

/// A destination's sink, built once per worker.
#[derive(Debug)]
pub enum Sink {
    Http {
        client: reqwest::Client,
        config: HttpSinkConfig,
        key_id: Option<String>,
        secret: Option<String>,
    },
    Amqp {
        exchange: String,
        routing_key: String,
    },
    File {
        dir: std::path::PathBuf,
    },
}

impl Sink {
    /// Builds the sink of a destination.
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be built (TLS set-up).
    pub fn build(destination: &Destination, config_dir: &std::path::Path) -> Result<Sink, String> {
        let raw = &destination.raw;
        match raw.sink.as_str() {
            "http" => {
                let http = raw.http.clone().ok_or("missing [outbound.http]")?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(http.timeout_secs))
                    .connect_timeout(Duration::from_secs(http.timeout_secs.min(5)))
                    // A destination must not bounce records to another host.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())?;
                let key_id = http.auth.as_ref().map(|a| a.key_id.clone());
                let secret = destination.http_secret.as_ref().map(|s| s.expose().to_owned());
                Ok(Sink::Http { client, config: http, key_id, secret })
            }
            "amqp" => {
                let amqp = raw.amqp.clone().ok_or("missing [outbound.amqp]")?;
                Ok(Sink::Amqp { exchange: amqp.exchange, routing_key: amqp.routing_key })
            }
            "file" => {
                let file = raw.file.clone().ok_or("missing [outbound.file]")?;
                Ok(Sink::File { dir: config_dir.join(file.dir) })
            }
            other => Err(format!("unknown sink {other}")),
        }
    }

    /// Delivers one copy. `channel` is a confirm channel for AMQP sinks.
    pub async fn deliver(&self, copy: &Copy<'_>, channel: Option<&lapin::Channel>) -> SinkOutcome {
        match self {
            Sink::Http { client, config, key_id, secret } => {
                deliver_http(client, config, key_id.as_deref(), secret.as_deref(), copy).await
            }
            Sink::Amqp { exchange, routing_key } => {
                let Some(channel) = channel else {
                    return SinkOutcome::Retriable {
                        reason: "broker connection down".into(),
                        response: String::new(),
                    };
                };
                let key = routing_key
                    .replace("{catalog_item}", copy.catalog_item)
                    .replace("{operation}", copy.operation);
                let mut headers = lapin::types::FieldTable::default();
                broker::put_str(&mut headers, "x-credgate-record-key", copy.record_key);
                broker::put_str(&mut headers, "x-credgate-operation", copy.operation);
                let message = Outgoing {
                    exchange: exchange.clone(),
                    routing_key: key,
                    body: copy.body.to_vec(),
                    properties: broker::properties(copy.idempotency_key, copy.content_type)
                        .with_headers(headers),
                    mandatory: true,
                };
                match broker::publish_all(channel, vec![message]).await {
                    Ok(()) => SinkOutcome::Delivered { response: "confirmed by broker".into() },
                    // Nobody bound at the platform yet, a nack or a timeout: try again later.
                    Err(error) => SinkOutcome::Retriable {
                        reason: error.to_string(),
                        response: String::new(),
                    },
                }
            }
            Sink::File { dir } => deliver_file(dir, copy).await,
        }
    }
}

/// `HMAC-SHA256(secret, timestamp + "\n" + body)`, hex.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    #[allow(clippy::unwrap_used)] // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn deliver_http(
    client: &reqwest::Client,
    config: &HttpSinkConfig,
    key_id: Option<&str>,
    secret: Option<&str>,
    copy: &Copy<'_>,
) -> SinkOutcome {
    let timestamp = jiff::Timestamp::now().as_second().to_string();
    let mut request = client
        .post(&config.endpoint)
        .header("content-type", copy.content_type)
        .header("idempotency-key", copy.idempotency_key)
        .header("x-credgate-record-key", header_safe(copy.record_key))
        .header("x-credgate-operation", copy.operation)
        .header("x-credgate-catalog-item", copy.catalog_item)
        .body(copy.body.to_vec());
    if let (Some(key_id), Some(secret)) = (key_id, secret) {
        request = request
            .header("x-credgate-key-id", key_id)
            .header("x-credgate-timestamp", &timestamp)
            .header("x-credgate-signature", sign(secret, &timestamp, copy.body));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(error) => {
            let kind = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect"
            } else {
                "request"
            };
            return SinkOutcome::Retriable {
                reason: format!("http {kind} error"),
                response: String::new(),
            };
        }
    };
    let status = response.status();
    // Keep a bounded excerpt of the answer: it is the delivery receipt (or the reason).
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(2000).collect();
    classify_http(status.as_u16(), &excerpt, config)
}

/// Delivered / retriable / permanent from an HTTP answer, including "2xx with an error body".
pub fn classify_http(status: u16, body: &str, config: &HttpSinkConfig) -> SinkOutcome {
    let response = format!("{status} {body}");
    match status {
        200..=299 => {
            if let Some(pointer) = &config.success_pointer {
                let value = serde_json::from_str::<serde_json::Value>(body).ok();
                let found = value.as_ref().and_then(|v| v.pointer(pointer)).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                return match found {
                    Some(code) if config.success_values.contains(&code) => {
                        SinkOutcome::Delivered { response }
                    }
                    Some(code) => SinkOutcome::Permanent {
                        reason: format!("2xx with error code {code}"),
                        response,
                    },
                    None => SinkOutcome::Retriable {
                        reason: format!("2xx without {pointer} in the answer"),
                        response,
                    },
                };
            }
            SinkOutcome::Delivered { response }
        }
        408 | 425 | 429 | 500..=599 => {
            SinkOutcome::Retriable { reason: format!("http {status}"), response }
        }
        _ => SinkOutcome::Permanent { reason: format!("http {status}"), response },
    }
}

/// Record keys may carry characters a header cannot (CR/LF never reach a header).
fn header_safe(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect::<String>().escape_default().to_string()
}

async fn deliver_file(dir: &std::path::Path, copy: &Copy<'_>) -> SinkOutcome {
    let extension = if copy.content_type.contains("xml") { "xml" } else { "json" };
    let path = dir.join(format!("{}.{extension}", copy.idempotency_key));
    let tmp = dir.join(format!(".{}.tmp", copy.idempotency_key));
    let body = copy.body.to_vec();
    let dir = dir.to_owned();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write as _;
        std::fs::create_dir_all(&dir)?;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await;
    match result {
        Ok(Ok(())) => SinkOutcome::Delivered { response: "written".into() },
        Ok(Err(error)) => {
            SinkOutcome::Retriable { reason: format!("file: {error}"), response: String::new() }
        }
        Err(error) => SinkOutcome::Retriable {
            reason: format!("file task: {error}"),
            response: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pointer: Option<&str>) -> HttpSinkConfig {
        HttpSinkConfig {
            endpoint: "http://127.0.0.1:1/".into(),
            timeout_secs: 1,
            auth: None,
            success_pointer: pointer.map(str::to_owned),
            success_values: vec!["0".into()],
        }
    }

    #[test]
    fn answers_are_classified() {
        assert!(matches!(classify_http(200, "", &config(None)), SinkOutcome::Delivered { .. }));
        assert!(matches!(classify_http(503, "", &config(None)), SinkOutcome::Retriable { .. }));
        assert!(matches!(classify_http(429, "", &config(None)), SinkOutcome::Retriable { .. }));
        assert!(matches!(classify_http(400, "", &config(None)), SinkOutcome::Permanent { .. }));
        assert!(matches!(
            classify_http(200, r#"{"code":0}"#, &config(Some("/code"))),
            SinkOutcome::Delivered { .. }
        ));
        assert!(matches!(
            classify_http(200, r#"{"code":"E102"}"#, &config(Some("/code"))),
            SinkOutcome::Permanent { .. }
        ));
        assert!(matches!(
            classify_http(200, "<html>", &config(Some("/code"))),
            SinkOutcome::Retriable { .. }
        ));
    }

    #[test]
    fn signature_is_hmac_over_timestamp_and_body() {
        // Independent value: printf '1700000000\nbody' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign("secret", "1700000000", b"body"),
            "1083d72abe19e988cd6966d8ee56786327ae08382e55b16049303ad8028ec17d"
        );
        assert_ne!(sign("secret", "1700000000", b"body"), sign("secret", "1700000001", b"body"));
    }
}
