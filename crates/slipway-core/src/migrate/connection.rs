//! Opening PostgreSQL connections for the runner and turning driver errors
//! into [`MigrateError`]s that name the (redacted) database and never the
//! password.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls};

use super::error::{MigrateError, SqlFailure, scrub};
use super::sql_text;
use crate::secret::{Secret, redact_url};

/// How long to wait for the TCP connection and startup before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A database URL parsed once, with what error messages need.
#[derive(Clone)]
pub struct Target {
    config: Config,
    /// The URL with its password redacted, for messages.
    pub redacted: String,
    password: Option<String>,
}

impl Target {
    pub fn parse(url: &Secret) -> Result<Self, MigrateError> {
        let redacted = redact_url(url.expose());
        let mut config: Config =
            url.expose()
                .parse()
                .map_err(|e: tokio_postgres::Error| MigrateError::Connect {
                    url: redacted.clone(),
                    reason: format!(
                        "the URL does not parse: {}",
                        scrub_with_url(&e.to_string(), url)
                    ),
                })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Self {
            config,
            redacted,
            password,
        })
    }

    /// Opens one connection; the driver's connection task runs until the
    /// returned client is dropped (which closes the session and with it any
    /// session-level advisory lock).
    pub async fn connect(
        &self,
        application_name: &str,
    ) -> Result<(Client, JoinHandle<()>), MigrateError> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| MigrateError::Connect {
                    url: self.redacted.clone(),
                    reason: self.scrub(&error_text(&e)),
                })?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "migration connection closed with an error");
            }
        });
        Ok((client, task))
    }

    /// A [`MigrateError::Database`] for a failed bookkeeping query.
    pub fn db_error(&self, doing: &str, e: &tokio_postgres::Error) -> MigrateError {
        MigrateError::Database {
            doing: doing.to_string(),
            url: self.redacted.clone(),
            reason: self.scrub(&error_text(e)),
        }
    }

    pub fn scrub(&self, message: &str) -> String {
        scrub(message, self.password.as_deref())
    }
}

/// The driver's message including its source chain, which holds the useful
/// part ("db error" alone says nothing).
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(hint) = db.hint() {
            s.push_str(&format!("; hint: {hint}"));
        }
        return s;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Locates a driver error raised by SQL from a migration file. `sql` is the
/// text that was sent, starting at byte `offset` of the file `file_text`;
/// PostgreSQL's position is relative to the text sent.
pub fn sql_failure(
    target: &Target,
    e: &tokio_postgres::Error,
    file_text: &str,
    offset: usize,
    statement: Option<usize>,
) -> SqlFailure {
    let Some(db) = e.as_db_error() else {
        return SqlFailure {
            message: target.scrub(&error_text(e)),
            code: None,
            line: None,
            column: None,
            detail: None,
            hint: None,
            statement,
        };
    };
    let (line, column) = match db.position() {
        Some(tokio_postgres::error::ErrorPosition::Original(pos)) => {
            let pos = sql_text::chars_before(file_text, offset) + *pos as usize;
            let (l, c) = sql_text::line_col(file_text, pos);
            (Some(l), Some(c))
        }
        _ => (None, None),
    };
    SqlFailure {
        message: target.scrub(db.message()),
        code: Some(db.code().code().to_string()),
        line,
        column,
        detail: db.detail().map(|d| target.scrub(d)),
        hint: db.hint().map(str::to_string),
        statement,
    }
}

fn scrub_with_url(message: &str, url: &Secret) -> String {
    let password = url::Url::parse(url.expose())
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    scrub(message, password.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_url_error_hides_the_password() {
        let url = Secret::new("postgres://app:canary-pw@db:notaport/x");
        let err = match Target::parse(&url) {
            Ok(_) => panic!("a non-numeric port must not parse"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains("canary-pw"), "{err}");
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_error_hides_the_password() {
        // Port 1 on loopback: nothing listens there, the connect fails fast.
        let url = Secret::new("postgres://app:canary-pw@127.0.0.1:1/x");
        let target = Target::parse(&url).expect("valid URL");
        let err = match target.connect("test").await {
            Ok(_) => panic!("nothing listens on port 1"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains("canary-pw"), "{err}");
        assert!(err.contains("127.0.0.1"), "{err}");
    }
}
