//! PostgreSQL: the connection pool and every query the service runs, so the
//! SQL can be read in one file. Routes turn HTTP into calls here and back.
//!
//! Embeddings cross the wire as pgvector's text form (`[1,2,3]`, cast with
//! `::vector` / `::text`) so no pgvector client crate is needed.

use std::fmt::Write as _;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::config::Config;

/// How long to wait for a connection from the pool, for a new connection, and
/// for a recycled one's check. Short: a request (or `/health`) should fail
/// fast while the database is down rather than queue up.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// Embedding dimensions; must match `VECTOR(3)` in `migrations/0002_events.up.sql`.
pub const EMBEDDING_DIMS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("database returned an unexpected value: {0}")]
    Decode(String),
}

impl DbError {
    /// The message with its causes, e.g. "...: error connecting to server:
    /// Connection refused (os error 111)": tokio-postgres keeps the useful
    /// part in `source()`, which `Display` alone leaves out. Connection
    /// errors carry no credentials, so this is safe to log and report.
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// Builds the pool. Connections are opened lazily, so the server starts (and
/// reports `unhealthy`) while the database is still down.
pub fn pool(config: &Config) -> Result<Pool, deadpool_postgres::BuildError> {
    let mut pg = config.database.clone();
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(POOL_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("events-server");
    }
    // Fast recycling only checks the socket is open: a query per checkout
    // would double the round trips, and a dead connection fails one query.
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_max)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(POOL_TIMEOUT),
            create: Some(POOL_TIMEOUT),
            recycle: Some(POOL_TIMEOUT),
        })
        .build()
}

/// golang-migrate's `schema_migrations` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    pub version: i64,
    pub dirty: bool,
}

/// One round trip for `/health`: proves the database answers and reads the
/// schema version (`None` when no migration was ever applied).
pub async fn probe(pool: &Pool) -> Result<Option<SchemaVersion>, DbError> {
    let client = pool.get().await?;
    // to_regclass is NULL when the table does not exist, so a fresh database
    // is a result, not an error.
    let row = client
        .query_one(
            "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
            &[],
        )
        .await?;
    if !row.get::<_, bool>("present") {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT version, dirty FROM schema_migrations ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| SchemaVersion {
        version: r.get("version"),
        dirty: r.get("dirty"),
    }))
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub starts_at: OffsetDateTime,
    pub lon: f64,
    pub lat: f64,
    pub embedding: Option<Vec<f32>>,
    pub created_at: OffsetDateTime,
}

/// A validated new event (see `routes::events`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub title: String,
    pub description: String,
    pub starts_at: OffsetDateTime,
    pub lon: f64,
    pub lat: f64,
    pub embedding: Option<Vec<f32>>,
}

/// Filters of `GET /events`; both may be combined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// (lon, lat, radius in metres)
    pub near: Option<(f64, f64, f64)>,
    pub text: Option<String>,
    pub limit: i64,
}

/// A search result with what it was ranked by.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub event: Event,
    pub distance_m: Option<f64>,
    pub score: Option<f64>,
}

const COLUMNS: &str = "e.id, e.title, e.description, e.starts_at, \
     ST_X(e.location::geometry) AS lon, ST_Y(e.location::geometry) AS lat, \
     e.embedding::text AS embedding, e.created_at";

pub async fn insert(pool: &Pool, new: &NewEvent) -> Result<Event, DbError> {
    let client = pool.get().await?;
    let embedding = new.embedding.as_deref().map(vector_text);
    let sql = format!(
        "WITH e AS (
             INSERT INTO events (title, description, starts_at, location, embedding)
             VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326)::geography, $6::text::vector)
             RETURNING *)
         SELECT {COLUMNS} FROM e"
    );
    let row = client
        .query_one(
            &sql,
            &[
                &new.title,
                &new.description,
                &new.starts_at,
                &new.lon,
                &new.lat,
                &embedding,
            ],
        )
        .await?;
    event_from_row(&row)
}

pub async fn get(pool: &Pool, id: i64) -> Result<Option<Event>, DbError> {
    let client = pool.get().await?;
    let sql = format!("SELECT {COLUMNS} FROM events e WHERE e.id = $1");
    client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()
}

/// `near` uses the GiST index through ST_DWithin on geography (metres on the
/// spheroid); `text` uses the trigram index through `%>` (word similarity,
/// so "jazz" finds "Jazz night at the harbour"). The SQL is assembled from
/// the filters present rather than `$1 IS NULL OR ...`, which would keep the
/// planner from using either index.
pub async fn search(pool: &Pool, search: &Search) -> Result<Vec<Hit>, DbError> {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut select = format!("SELECT {COLUMNS}");
    let mut conditions = Vec::new();
    let mut order = Vec::new();

    if let Some((lon, lat, metres)) = search.near {
        params.push(Box::new(lon));
        params.push(Box::new(lat));
        params.push(Box::new(metres));
        let (x, y, r) = (params.len() - 2, params.len() - 1, params.len());
        let point = format!("ST_SetSRID(ST_MakePoint(${x}, ${y}), 4326)::geography");
        let _ = write!(select, ", ST_Distance(e.location, {point}) AS distance_m");
        conditions.push(format!("ST_DWithin(e.location, {point}, ${r})"));
        order.push("distance_m ASC".to_owned());
    } else {
        select.push_str(", NULL::float8 AS distance_m");
    }
    if let Some(text) = &search.text {
        params.push(Box::new(text.clone()));
        let t = params.len();
        let _ = write!(select, ", word_similarity(${t}, e.title)::float8 AS score");
        conditions.push(format!("e.title %> ${t}"));
        order.push("score DESC".to_owned());
    } else {
        select.push_str(", NULL::float8 AS score");
    }
    order.push("e.starts_at ASC".to_owned());
    order.push("e.id ASC".to_owned());
    params.push(Box::new(search.limit));
    let limit = params.len();

    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "{select} FROM events e {filter} ORDER BY {} LIMIT ${limit}",
        order.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();

    let client = pool.get().await?;
    let rows = client.query(&sql, &refs).await?;
    rows.iter()
        .map(|row| {
            Ok(Hit {
                event: event_from_row(row)?,
                distance_m: row.try_get("distance_m")?,
                score: row.try_get("score")?,
            })
        })
        .collect()
}

/// The outcome of `GET /events/{id}/similar`.
#[derive(Debug, Clone, PartialEq)]
pub enum Similar {
    NoSuchEvent,
    NoEmbedding,
    /// Nearest first, with their L2 distance to the event's embedding.
    Found(Vec<(Event, f64)>),
}

pub async fn similar(pool: &Pool, id: i64, limit: i64) -> Result<Similar, DbError> {
    let client = pool.get().await?;
    let Some(row) = client
        .query_opt(
            "SELECT embedding IS NOT NULL AS has_embedding FROM events WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(Similar::NoSuchEvent);
    };
    if !row.try_get::<_, bool>("has_embedding")? {
        return Ok(Similar::NoEmbedding);
    }
    let sql = format!(
        "SELECT {COLUMNS}, (e.embedding <-> t.embedding)::float8 AS distance
         FROM events e, (SELECT embedding FROM events WHERE id = $1) t
         WHERE e.id <> $1 AND e.embedding IS NOT NULL
         ORDER BY e.embedding <-> t.embedding, e.id
         LIMIT $2"
    );
    let rows = client.query(&sql, &[&id, &limit]).await?;
    let found = rows
        .iter()
        .map(|row| Ok((event_from_row(row)?, row.try_get("distance")?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Similar::Found(found))
}

fn event_from_row(row: &Row) -> Result<Event, DbError> {
    let embedding: Option<String> = row.try_get("embedding")?;
    Ok(Event {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        starts_at: row.try_get("starts_at")?,
        lon: row.try_get("lon")?,
        lat: row.try_get("lat")?,
        embedding: embedding.as_deref().map(parse_vector).transpose()?,
        created_at: row.try_get("created_at")?,
    })
}

/// pgvector's text input form: `[1,2.5,3]`.
pub fn vector_text(values: &[f32]) -> String {
    let parts: Vec<String> = values.iter().map(f32::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Parses pgvector's text output form.
pub fn parse_vector(text: &str) -> Result<Vec<f32>, DbError> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| DbError::Decode(format!("vector `{text}` is not in [..] form")))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<f32>()
                .map_err(|_| DbError::Decode(format!("vector element `{part}` is not a number")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_text_round_trips() {
        let v = vec![1.0, -2.5, 0.125];
        assert_eq!(vector_text(&v), "[1,-2.5,0.125]");
        assert_eq!(parse_vector(&vector_text(&v)).expect("parses"), v);
    }

    #[test]
    fn malformed_vector_text_is_an_error() {
        assert!(parse_vector("1,2,3").is_err());
        assert!(parse_vector("[1,x,3]").is_err());
        assert_eq!(parse_vector("[]").expect("empty"), Vec::<f32>::new());
    }
}
