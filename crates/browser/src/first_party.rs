//! The task's headers and cookies in browser mode: added by the request interceptor to
//! requests of the rendered URL's origin only.

use chromiumoxide::cdp::browser_protocol::fetch::HeaderEntry;
use selextract_fetch::FetchRequest;
use url::Url;

/// The task's headers and cookies, sent only to requests of the rendered URL's origin
/// (scheme, host and port): never to third-party sub-resources.
pub(crate) struct FirstParty {
    origin: url::Origin,
    headers: Vec<(String, String)>,
    /// The task's cookies as one `Cookie` header value. They travel as a header rather than
    /// through the cookie jar, because the jar would send them to every port of the host.
    cookie: Option<String>,
}

impl FirstParty {
    pub(crate) fn of(req: &FetchRequest) -> FirstParty {
        let headers = req
            .headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("user-agent"))
            .cloned()
            .collect();
        let cookie = (!req.cookies.is_empty()).then(|| {
            req.cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        FirstParty {
            origin: req.url.origin(),
            headers,
            cookie,
        }
    }

    /// The headers to continue a request to `url` with, or `None` to leave them alone.
    pub(crate) fn headers_for(
        &self,
        url: &str,
        sent: &serde_json::Value,
    ) -> Option<Vec<HeaderEntry>> {
        if self.headers.is_empty() && self.cookie.is_none() {
            return None;
        }
        if Url::parse(url).ok()?.origin() != self.origin {
            return None;
        }
        let task_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let mut entries = Vec::new();
        let mut jar_cookie = None;
        if let Some(sent) = sent.as_object() {
            for (name, value) in sent {
                let Some(value) = value.as_str() else {
                    continue;
                };
                if name.eq_ignore_ascii_case("cookie") {
                    jar_cookie = Some(value.to_owned());
                } else if !task_names.iter().any(|t| t.eq_ignore_ascii_case(name)) {
                    entries.push(HeaderEntry::new(name.clone(), value.to_owned()));
                }
            }
        }
        for (name, value) in &self.headers {
            entries.push(HeaderEntry::new(name.clone(), value.clone()));
        }
        let cookie = match (jar_cookie, &self.cookie) {
            (Some(jar), Some(task)) => Some(format!("{jar}; {task}")),
            (jar, task) => jar.or_else(|| task.clone()),
        };
        if let Some(cookie) = cookie {
            entries.push(HeaderEntry::new("Cookie", cookie));
        }
        Some(entries)
    }
}
