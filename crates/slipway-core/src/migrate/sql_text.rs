//! Just enough SQL lexing to run migration files safely: split a file into
//! top-level statements (quotes, dollar quotes, comments and `BEGIN ATOMIC`
//! bodies respected), tell whether a file manages its own transaction, and
//! turn PostgreSQL's error position into a line and column of the file.
//!
//! Why split at all: a no-transaction file (`CREATE INDEX CONCURRENTLY`) sent
//! as one multi-statement query would run as one implicit transaction, which
//! PostgreSQL refuses for such statements; each statement must go on its own.

/// One top-level statement of a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement text, without its terminating `;`, not trimmed (so
    /// offsets inside it still match the file).
    pub text: &'a str,
    /// Byte offset of `text` in the file.
    pub offset: usize,
}

impl Statement<'_> {
    /// Whether the statement is only whitespace and comments.
    pub fn is_blank(&self) -> bool {
        first_word(self.text).is_none()
    }
}

/// Splits `sql` into its top-level statements, dropping blank ones.
pub fn split_statements(sql: &str) -> Vec<Statement<'_>> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // `BEGIN ATOMIC ... END` bodies of SQL-standard functions contain `;`
    // that do not end the statement; psql counts BEGIN/CASE/END the same way.
    let mut words = WordTracker::default();
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = skip_line_comment(bytes, i);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i);
                continue;
            }
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && !is_ident_byte_before(bytes, i - 1);
                i = skip_quoted(bytes, i, b'\'', escapes);
                words.other();
                continue;
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                words.other();
                continue;
            }
            b'$' => {
                if let Some(end) = skip_dollar_quote(bytes, i) {
                    i = end;
                    words.other();
                    continue;
                }
                i += 1;
                continue;
            }
            b';' if words.depth == 0 => {
                push_statement(&mut statements, sql, start, i);
                start = i + 1;
                words = WordTracker::default();
                i += 1;
                continue;
            }
            _ if is_ident_start(b) && !is_ident_byte_before(bytes, i) => {
                let end = ident_end(bytes, i);
                words.word(&sql[i..end]);
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    push_statement(&mut statements, sql, start, bytes.len());
    statements
}

/// Whether the file contains top-level transaction control (`BEGIN;`,
/// `COMMIT;`, ...), as files written for golang-migrate often do. Such a file
/// manages its own transaction and must not be wrapped in ours: its `COMMIT`
/// would end our transaction half-way.
pub fn has_transaction_control(sql: &str) -> bool {
    split_statements(sql).iter().any(|s| {
        let mut words = words_of(s.text);
        match words.next().map(|w| w.to_ascii_uppercase()) {
            Some(w)
                if matches!(
                    w.as_str(),
                    "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT"
                ) =>
            {
                true
            }
            Some(w) if w == "START" => words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("TRANSACTION")),
            _ => false,
        }
    })
}

/// 1-based (line, column) of the 1-based *character* position `position`
/// (PostgreSQL's error position) within `text`. Out-of-range positions map to
/// the end of the text.
pub fn line_col(text: &str, position: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (n, c) in text.chars().enumerate() {
        if n + 1 >= position {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Number of characters in `text[..byte_offset]`: converts a statement's byte
/// offset into the character count PostgreSQL positions use.
pub fn chars_before(text: &str, byte_offset: usize) -> usize {
    text.get(..byte_offset).map_or(0, |t| t.chars().count())
}

/// The first word of a statement, skipping whitespace and comments.
pub fn first_word(text: &str) -> Option<&str> {
    words_of(text).next()
}

fn push_statement<'a>(out: &mut Vec<Statement<'a>>, sql: &'a str, start: usize, end: usize) {
    let statement = Statement {
        text: &sql[start..end],
        offset: start,
    };
    if !statement.is_blank() {
        out.push(statement);
    }
}

/// Top-level words of a statement (identifiers/keywords outside quotes and
/// comments), in order.
fn words_of(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
                i = skip_line_comment(bytes, i);
            } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
                i = skip_block_comment(bytes, i);
            } else if b == b'\'' || b == b'"' {
                i = skip_quoted(bytes, i, b, false);
            } else if b == b'$' {
                i = skip_dollar_quote(bytes, i).unwrap_or(i + 1);
            } else if is_ident_start(b) && !is_ident_byte_before(bytes, i) {
                let end = ident_end(bytes, i);
                let word = &text[i..end];
                i = end;
                return Some(word);
            } else {
                i += 1;
            }
        }
        None
    })
}

/// Tracks `CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC` bodies.
#[derive(Default)]
struct WordTracker {
    /// Words seen so far in this statement (only the first few matter).
    seen: usize,
    create_routine: bool,
    first_create: bool,
    depth: usize,
}

impl WordTracker {
    fn word(&mut self, word: &str) {
        let upper = word.to_ascii_uppercase();
        match self.seen {
            0 => self.first_create = upper == "CREATE",
            1..=3 if self.first_create => {
                if matches!(upper.as_str(), "FUNCTION" | "PROCEDURE") {
                    self.create_routine = true;
                }
            }
            _ => {}
        }
        self.seen += 1;
        if !self.create_routine {
            return;
        }
        match upper.as_str() {
            "BEGIN" => self.depth += 1,
            "CASE" if self.depth > 0 => self.depth += 1,
            "END" if self.depth > 0 => self.depth -= 1,
            _ => {}
        }
    }

    fn other(&mut self) {
        self.seen += 1;
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_ident_byte_before(bytes: &[u8], i: usize) -> bool {
    i > 0 && is_ident_byte(bytes[i - 1])
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ident_byte(bytes[i]) {
        i += 1;
    }
    i
}

fn skip_line_comment(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] != b'\n' {
        i += 1;
    }
    i
}

/// Block comments nest in PostgreSQL.
fn skip_block_comment(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Skips a quoted string or identifier starting at `i` (the opening quote);
/// a doubled quote is an escaped quote, and in `E'...'` strings so is `\'`.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash_escapes: bool) -> usize {
    i += 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash_escapes && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

/// If a dollar quote (`$$` or `$tag$`) opens at `i`, the index just past its
/// closing delimiter; `None` for `$1` parameters and other lone dollars.
fn skip_dollar_quote(bytes: &[u8], i: usize) -> Option<usize> {
    if is_ident_byte_before(bytes, i) {
        return None;
    }
    let mut j = i + 1;
    if j < bytes.len() && (bytes[j].is_ascii_alphabetic() || bytes[j] == b'_' || bytes[j] >= 0x80) {
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] >= 0x80)
        {
            j += 1;
        }
    }
    if bytes.get(j) != Some(&b'$') {
        return None;
    }
    let delimiter = &bytes[i..=j];
    let body_start = j + 1;
    let found = bytes[body_start..]
        .windows(delimiter.len())
        .position(|w| w == delimiter);
    Some(match found {
        Some(p) => body_start + p + delimiter.len(),
        None => bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split_statements(sql)
            .iter()
            .map(|s| s.text.trim().to_string())
            .collect()
    }

    #[test]
    fn splits_plain_statements_and_drops_blank_ones() {
        let sql =
            "CREATE TABLE a (id int);\n\n-- just a comment;\nINSERT INTO a VALUES (1);\n  ;\n";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE TABLE a (id int)",
                "-- just a comment;\nINSERT INTO a VALUES (1)"
            ]
        );
    }

    #[test]
    fn semicolons_inside_quotes_comments_and_dollar_quotes_do_not_split() {
        let sql = r#"INSERT INTO t VALUES ('a;b', E'it\'s;', "we;ird");
/* block; /* nested; */ still comment; */
CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;
DO $$ BEGIN PERFORM 1; END $$;
SELECT $1::int"#;
        let got = texts(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[1].starts_with("/* block;"));
        assert!(got[1].ends_with("LANGUAGE plpgsql"));
        assert_eq!(got[2], "DO $$ BEGIN PERFORM 1; END $$");
        assert_eq!(got[3], "SELECT $1::int");
    }

    #[test]
    fn begin_atomic_bodies_stay_one_statement() {
        let sql = "CREATE OR REPLACE FUNCTION g(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;";
        let got = texts(sql);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].ends_with("END"));
        assert_eq!(got[1], "SELECT 3");
    }

    #[test]
    fn offsets_point_into_the_file() {
        let sql = "SELECT 1;\nSELECT 2;";
        let s = split_statements(sql);
        assert_eq!(s[1].offset, 9);
        assert_eq!(
            &sql[s[1].offset..s[1].offset + s[1].text.len()],
            "\nSELECT 2"
        );
    }

    #[test]
    fn detects_transaction_control_only_at_top_level() {
        assert!(has_transaction_control(
            "BEGIN;\nCREATE TABLE a();\nCOMMIT;"
        ));
        assert!(has_transaction_control("start transaction; select 1; end;"));
        assert!(has_transaction_control("-- c\n  commit"));
        assert!(!has_transaction_control(
            "CREATE FUNCTION f() RETURNS void AS $$\nBEGIN\n  NULL;\nEND;\n$$ LANGUAGE plpgsql;"
        ));
        assert!(!has_transaction_control("DO $$ BEGIN COMMIT; END $$;"));
        assert!(!has_transaction_control(
            "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;"
        ));
        assert!(!has_transaction_control("SELECT 'BEGIN'; -- COMMIT"));
        assert!(!has_transaction_control("CREATE TABLE begin_log (id int)"));
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "SELECT 'é';\nSELEC x;";
        // PostgreSQL positions are 1-based characters: 'S' of SELEC is char 13.
        assert_eq!(line_col(text, 13), (2, 1));
        assert_eq!(line_col(text, 1), (1, 1));
        assert_eq!(line_col(text, 9), (1, 9));
        assert_eq!(line_col(text, 10_000), (2, 9));
        assert_eq!(chars_before(text, "SELECT 'é'".len()), 10);
    }

    #[test]
    fn unterminated_constructs_do_not_panic() {
        for sql in [
            "SELECT 'abc",
            "SELECT $$ abc",
            "/* abc",
            "SELECT \"abc",
            "SELECT $",
            "$a",
        ] {
            let _ = split_statements(sql);
            let _ = has_transaction_control(sql);
        }
    }
}
