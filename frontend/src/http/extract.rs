//! Extractors whose rejections are [`ApiError`]s, so malformed requests get
//! the documented error body instead of axum's plain text.

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;
use strata_common::ErrorCode;

use super::error::ApiError;

/// A JSON request body that must be an object. serde's derived structs also
/// accept a JSON array (fields by position), a shape the API neither
/// documents nor wants to support, so the body is taken as an object first.
/// (Only the top level is checked: the request types have no nested structs.)
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(object) =
            axum::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, state)
                .await?;
        T::deserialize(serde_json::Value::Object(object))
            .map(Json)
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            })
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);
