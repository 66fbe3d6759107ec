//! The error body: one JSON shape for every failed request.

use serde::{Deserialize, Serialize};

/// What the server answers whenever a request fails, whatever the cause.
///
/// `code` is stable and meant for programs (`not_found`, `invalid_json`, ...);
/// `message` is meant for a person and says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The HTTP status code, repeated so that a logged body stands alone.
    pub status: u16,
    /// A stable machine-readable code.
    pub code: String,
    /// A sentence a person can act on.
    pub message: String,
    /// Per-field problems, when the request body or query was at fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field's name or JSON path (`name`, `disks[2].size`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ErrorBody {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), details: Vec::new() }
    }

    pub fn with_detail(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.details.push(FieldError { field: field.into(), message: message.into() });
        self
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)?;
        for d in &self.details {
            write!(f, "; {}: {}", d.field, d.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_omitted_when_empty_and_kept_otherwise() {
        let plain = ErrorBody::new(404, "not_found", "No such route");
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("details").is_none());

        let detailed = plain.clone().with_detail("name", "must not be empty");
        let text = serde_json::to_string(&detailed).unwrap();
        let back: ErrorBody = serde_json::from_str(&text).unwrap();
        assert_eq!(back, detailed);
        assert_eq!(back.to_string(), "404 (not_found): No such route; name: must not be empty");
    }
}
