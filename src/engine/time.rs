//! Times as the API shows them. Records keep milliseconds since the Unix epoch.

/// RFC 3339 UTC, as every answer and the audit trail spell times.
pub fn rfc3339(ms: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&::time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
