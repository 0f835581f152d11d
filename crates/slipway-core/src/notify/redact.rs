//! How a destination is shown in logs, errors and `notify_status`: scheme,
//! host and port only. Webhook URLs carry their token in the path (Slack,
//! Discord) or the query, so neither is ever shown.

/// `scheme://host[:port]` of `url`, or a placeholder when it does not parse
/// (the raw text may be a token pasted in the wrong field).
pub fn destination(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            (None, _) => format!("{}://", u.scheme()),
        },
        Err(_) => "<not a URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn keeps_scheme_host_and_port_only() {
        assert_eq!(
            destination("https://hooks.slack.com/services/T0/B0/XXXX?x=1#f"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            destination("http://user:pw@127.0.0.1:8080/hook/tok"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(destination("https://ntfy.sh:443/topic"), "https://ntfy.sh");
        assert_eq!(destination("whsec_abc/def"), "<not a URL>");
    }
}
