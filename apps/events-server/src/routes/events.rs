//! The events API: create, fetch, search (near a point, by text) and
//! similar-by-embedding. Input is validated here; the SQL lives in `db`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ApiError;
use crate::db::{self, EMBEDDING_DIMS, NewEvent, Search, Similar};
use crate::state::AppState;

/// Results per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;
/// The radius of `near` when `km` is not given.
const DEFAULT_KM: f64 = 10.0;
/// Half the Earth's circumference: any larger radius covers everything.
const MAX_KM: f64 = 20_040.0;
const MAX_TITLE_CHARS: usize = 200;
const MAX_QUERY_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    title: String,
    #[serde(default)]
    description: String,
    /// RFC 3339, e.g. `2026-06-01T19:00:00Z`.
    starts_at: String,
    location: Location,
    #[serde(default)]
    embedding: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Location {
    lon: f64,
    lat: f64,
}

#[derive(Debug, Serialize)]
pub struct EventBody {
    id: i64,
    title: String,
    description: String,
    starts_at: String,
    location: Location,
    embedding: Option<Vec<f32>>,
    created_at: String,
}

#[derive(Debug, Serialize)]
struct HitBody {
    #[serde(flatten)]
    event: EventBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct HitsBody {
    events: Vec<HitBody>,
}

#[derive(Debug, Serialize)]
struct NeighbourBody {
    #[serde(flatten)]
    event: EventBody,
    distance: f64,
}

#[derive(Debug, Serialize)]
pub struct SimilarBody {
    id: i64,
    events: Vec<NeighbourBody>,
}

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    near: Option<String>,
    km: Option<f64>,
    q: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct SimilarParams {
    limit: Option<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateEvent>, JsonRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let Json(body) = body.map_err(|r| ApiError::BadRequest(r.body_text()))?;
        let new = validate_new(body)?;
        Ok::<_, ApiError>(db::insert(&state.pool, &new).await?)
    }
    .await;
    match result {
        Ok(event) => {
            state.metrics.events_processed.inc();
            let location = format!("/events/{}", event.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(EventBody::from(event)),
            )
                .into_response())
        }
        Err(err) => {
            state.metrics.events_failed.inc();
            Err(err)
        }
    }
}

pub async fn get(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<EventBody>, ApiError> {
    let id = event_id(id)?;
    db::get(&state.pool, id)
        .await?
        .map(|e| Json(EventBody::from(e)))
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))
}

pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<HitsBody>, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let search = validate_search(params)?;
    let hits = db::search(&state.pool, &search).await?;
    let events: Vec<HitBody> = hits
        .into_iter()
        .map(|h| HitBody {
            event: h.event.into(),
            distance_m: h.distance_m,
            score: h.score,
        })
        .collect();
    Ok(Json(HitsBody { events }))
}

pub async fn similar(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    params: Result<Query<SimilarParams>, QueryRejection>,
) -> Result<Json<SimilarBody>, ApiError> {
    let id = event_id(id)?;
    let Query(params) = params.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let limit = validate_limit(params.limit, 5)?;
    match db::similar(&state.pool, id, limit).await? {
        Similar::NoSuchEvent => Err(ApiError::NotFound(format!("no event {id}"))),
        Similar::NoEmbedding => Err(ApiError::Unprocessable(format!(
            "event {id} has no embedding"
        ))),
        Similar::Found(found) => Ok(Json(SimilarBody {
            id,
            events: found
                .into_iter()
                .map(|(event, distance)| NeighbourBody {
                    event: event.into(),
                    distance,
                })
                .collect(),
        })),
    }
}

fn event_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::BadRequest("event id must be an integer".into()))?;
    Ok(id)
}

fn validate_new(body: CreateEvent) -> Result<NewEvent, ApiError> {
    let bad = |m: String| Err(ApiError::BadRequest(m));
    let title = body.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return bad(format!("title must be 1 to {MAX_TITLE_CHARS} characters"));
    }
    let Ok(starts_at) = OffsetDateTime::parse(body.starts_at.trim(), &Rfc3339) else {
        return bad("starts_at must be an RFC 3339 date-time, e.g. 2026-06-01T19:00:00Z".into());
    };
    validate_point(body.location.lon, body.location.lat)?;
    if let Some(embedding) = &body.embedding
        && (embedding.len() != EMBEDDING_DIMS || embedding.iter().any(|x| !x.is_finite()))
    {
        return bad(format!("embedding must be {EMBEDDING_DIMS} finite numbers"));
    }
    Ok(NewEvent {
        title,
        description: body.description,
        starts_at,
        lon: body.location.lon,
        lat: body.location.lat,
        embedding: body.embedding,
    })
}

fn validate_point(lon: f64, lat: f64) -> Result<(), ApiError> {
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(ApiError::BadRequest(
            "longitude must be within -180..180 and latitude within -90..90".into(),
        ));
    }
    Ok(())
}

fn validate_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        ))),
    }
}

fn validate_search(params: SearchParams) -> Result<Search, ApiError> {
    let near = match params.near.as_deref() {
        None => {
            if params.km.is_some() {
                return Err(ApiError::BadRequest("km needs near=<lon>,<lat>".into()));
            }
            None
        }
        Some(near) => {
            let (lon, lat) = near
                .split_once(',')
                .and_then(|(x, y)| {
                    Some((x.trim().parse::<f64>().ok()?, y.trim().parse::<f64>().ok()?))
                })
                .ok_or_else(|| {
                    ApiError::BadRequest("near must be <lon>,<lat>, e.g. near=13.40,52.52".into())
                })?;
            validate_point(lon, lat)?;
            let km = params.km.unwrap_or(DEFAULT_KM);
            if !(km > 0.0 && km <= MAX_KM) {
                return Err(ApiError::BadRequest(format!(
                    "km must be greater than 0 and at most {MAX_KM}"
                )));
            }
            Some((lon, lat, km * 1000.0))
        }
    };
    let text = match params.q.map(|q| q.trim().to_owned()) {
        None => None,
        Some(q) if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS => {
            return Err(ApiError::BadRequest(format!(
                "q must be 1 to {MAX_QUERY_CHARS} characters"
            )));
        }
        Some(q) => Some(q),
    };
    Ok(Search {
        near,
        text,
        limit: validate_limit(params.limit, DEFAULT_LIMIT)?,
    })
}

impl From<db::Event> for EventBody {
    fn from(e: db::Event) -> Self {
        EventBody {
            id: e.id,
            title: e.title,
            description: e.description,
            starts_at: rfc3339(e.starts_at),
            location: Location {
                lon: e.lon,
                lat: e.lat,
            },
            embedding: e.embedding,
            created_at: rfc3339(e.created_at),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(near: Option<&str>, km: Option<f64>, q: Option<&str>) -> SearchParams {
        SearchParams {
            near: near.map(str::to_owned),
            km,
            q: q.map(str::to_owned),
            limit: None,
        }
    }

    #[test]
    fn near_is_lon_then_lat_and_km_becomes_metres() {
        let s = validate_search(params(Some("13.4, 52.5"), Some(2.5), None)).expect("valid");
        assert_eq!(s.near, Some((13.4, 52.5, 2500.0)));
        assert_eq!(s.limit, DEFAULT_LIMIT);
        let s = validate_search(params(Some("13.4,52.5"), None, None)).expect("valid");
        assert_eq!(s.near, Some((13.4, 52.5, DEFAULT_KM * 1000.0)));
    }

    #[test]
    fn bad_search_parameters_are_refused() {
        for p in [
            params(Some("13.4"), None, None),
            params(Some("200,10"), None, None),
            params(Some("10,95"), None, None),
            params(Some("1,2"), Some(0.0), None),
            params(Some("1,2"), Some(f64::NAN), None),
            params(None, Some(3.0), None),
            params(None, None, Some("  ")),
        ] {
            assert!(validate_search(p).is_err());
        }
    }

    fn body(title: &str, starts_at: &str, embedding: Option<Vec<f32>>) -> CreateEvent {
        CreateEvent {
            title: title.to_owned(),
            description: String::new(),
            starts_at: starts_at.to_owned(),
            location: Location { lon: 1.0, lat: 2.0 },
            embedding,
        }
    }

    #[test]
    fn new_event_validation() {
        assert!(
            validate_new(body(
                "Jazz",
                "2026-06-01T19:00:00Z",
                Some(vec![1.0, 2.0, 3.0])
            ))
            .is_ok()
        );
        assert!(validate_new(body(" ", "2026-06-01T19:00:00Z", None)).is_err());
        assert!(validate_new(body("Jazz", "tomorrow", None)).is_err());
        assert!(validate_new(body("Jazz", "2026-06-01T19:00:00Z", Some(vec![1.0]))).is_err());
        assert!(
            validate_new(body(
                "Jazz",
                "2026-06-01T19:00:00Z",
                Some(vec![1.0, f32::NAN, 0.0])
            ))
            .is_err()
        );
    }
}
