//! Where the uploader reads the transactions file from: a local path, an `http(s)://` URL, an
//! `s3://bucket/key` object, or a Google Drive share link. Every kind is streamed, so memory
//! stays flat whatever the file's size.

use std::fmt;
use std::io;
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;
use url::Url;

use crate::redact::error_chain;
use crate::store::{S3Settings, S3Store, StoreError};

/// Where Google Drive answers; tests replace it with a local fake.
const DRIVE_BASE: &str = "https://drive.google.com";

/// The most of an HTML page (Drive's confirmation page) read into memory.
const MAX_PAGE_BYTES: usize = 1 << 20;

/// How long a connection may take to open, and a read to wait for the next bytes, before the
/// download fails instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// An opened source: a byte stream plus what is known about it.
pub struct Source {
    /// The bytes, streamed.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// The length in bytes, when the source says (a file's size, `Content-Length`).
    pub size: Option<u64>,
    /// The source as given, with any credentials masked, for messages and logs.
    pub description: String,
}

/// Written by hand: the reader has no `Debug`.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("size", &self.size)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Options for [`open_source_with`]; the default is what [`open_source`] uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// Where Drive downloads go instead of `https://drive.google.com` (tests point it at a fake).
    pub drive_base: Option<String>,
}

/// Why a source could not be opened, each saying what to check.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A local file, or an S3 object, that does not exist.
    #[error("{source_name}: not found (check the path or key)")]
    NotFound { source_name: String },
    /// A local file that exists but cannot be read.
    #[error("{source_name}: cannot open: {error}")]
    Io { source_name: String, error: io::Error },
    /// A source string that is not understood (a Drive folder, a malformed URL...).
    #[error("{source_name}: {message}")]
    Invalid { source_name: String, message: String },
    /// The HTTP server answered with an error status.
    #[error("{url}: HTTP {status} (check the URL, and that it is reachable without logging in)")]
    HttpStatus { url: String, status: u16 },
    /// The HTTP request failed without an answer (DNS, connection, TLS, timeout).
    #[error("{url}: request failed: {} (check the address and the network)", error_chain(.error))]
    Http { url: String, error: reqwest::Error },
    /// Drive answered with a page instead of the file: it asks for a login.
    #[error(
        "{url}: Google Drive did not serve the file: it is not shared publicly (share it as \"Anyone \
         with the link\"), or Drive refused the download for now (its download quota)"
    )]
    DriveNotShared { url: String },
    /// An S3 failure, sorted like the object store's.
    #[error(transparent)]
    S3(#[from] StoreError),
}

impl SourceError {
    /// True when a retry may succeed (connection failures, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            Self::Http { error, .. } => error.is_connect() || error.is_timeout(),
            Self::S3(err) => err.is_transient(),
            _ => false,
        }
    }
}

/// Opens a source: a local path (or `file://`), `http(s)://`, `s3://bucket/key`, or a Google
/// Drive share link.
pub async fn open_source(source: &str, s3: &S3Settings) -> Result<Source, SourceError> {
    open_source_with(source, s3, &SourceOptions::default()).await
}

/// [`open_source`] with options (a different Drive address, for tests).
pub async fn open_source_with(
    source: &str,
    s3: &S3Settings,
    options: &SourceOptions,
) -> Result<Source, SourceError> {
    let description = mask_credentials(source);
    if let Some(rest) = source.strip_prefix("s3://") {
        return open_s3(rest, s3, description).await;
    }
    if source.starts_with("http://") || source.starts_with("https://") {
        let url = Url::parse(source).map_err(|err| SourceError::Invalid {
            source_name: description.clone(),
            message: format!("not a valid URL: {err}"),
        })?;
        if url.host_str() == Some("drive.google.com") {
            let id = drive_file_id(&url)
                .map_err(|message| SourceError::Invalid { source_name: description.clone(), message })?;
            let base = options.drive_base.as_deref().unwrap_or(DRIVE_BASE);
            return open_drive(base, &id, description).await;
        }
        let client = http_client(&description)?;
        let response = get(&client, url).await?;
        return Ok(stream_response(response, description));
    }
    open_file(source.strip_prefix("file://").unwrap_or(source), description).await
}

/// A local file, streamed by tokio.
async fn open_file(path: &str, description: String) -> Result<Source, SourceError> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(SourceError::NotFound { source_name: description });
        }
        Err(error) => return Err(SourceError::Io { source_name: description, error }),
    };
    let meta =
        file.metadata().await.map_err(|error| SourceError::Io { source_name: description.clone(), error })?;
    if meta.is_dir() {
        return Err(SourceError::Invalid {
            source_name: description,
            message: "is a folder, not a file".to_owned(),
        });
    }
    Ok(Source { reader: Box::new(file), size: Some(meta.len()), description })
}

/// An S3 object (`bucket/key` after the scheme), streamed from GetObject.
async fn open_s3(rest: &str, s3: &S3Settings, description: String) -> Result<Source, SourceError> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.is_empty() {
        return Err(SourceError::Invalid {
            source_name: description,
            message: "write an S3 source as s3://BUCKET/KEY".to_owned(),
        });
    }
    let store = S3Store::new(bucket, "", s3).await;
    let Some((body, size)) = store.get_stream(key).await? else {
        return Err(SourceError::NotFound { source_name: description });
    };
    Ok(Source { reader: Box::new(Box::pin(body.into_async_read())), size, description })
}

/// The HTTP client for downloads: timeouts on connecting and on each read, none on the whole
/// transfer (a large file may take long).
fn http_client(description: &str) -> Result<reqwest::Client, SourceError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("txpatterns/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| SourceError::Http { url: description.to_owned(), error: error.without_url() })
}

/// Sends a GET and turns a non-2xx answer into an error naming the (masked) URL.
async fn get(client: &reqwest::Client, url: Url) -> Result<reqwest::Response, SourceError> {
    let shown = mask_credentials(url.as_str());
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| SourceError::Http { url: shown.clone(), error: error.without_url() })?;
    let status = response.status();
    if !status.is_success() {
        return Err(SourceError::HttpStatus { url: shown, status: status.as_u16() });
    }
    Ok(response)
}

/// A response's body as a stream of bytes, read as it arrives.
fn stream_response(response: reqwest::Response, description: String) -> Source {
    let size = response.content_length();
    let stream = response.bytes_stream().map_err(|err| io::Error::other(err.without_url()));
    Source { reader: Box::new(StreamReader::new(Box::pin(stream))), size, description }
}

/// The file id in a Drive share link: `/file/d/ID/...`, or `?id=ID` on `/open` and `/uc`.
fn drive_file_id(url: &Url) -> Result<String, String> {
    let mut segments = url.path_segments().into_iter().flatten();
    let from_path = match (segments.next(), segments.next(), segments.next()) {
        (Some("file"), Some("d"), Some(id)) => Some(id.to_owned()),
        _ => None,
    };
    let from_query = || url.query_pairs().find(|(name, _)| name == "id").map(|(_, id)| id.into_owned());
    let id = from_path.or_else(from_query).unwrap_or_default();
    if url.path().contains("/folders/") {
        return Err("a Drive folder cannot be read: share the file itself".to_owned());
    }
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(
            "cannot find the file id in this Drive link (expected .../file/d/ID/... or ?id=ID)".to_owned()
        );
    }
    Ok(id)
}

/// A Drive file: the direct download, and, for files too large for Drive's virus scan, the
/// "download anyway" form of the page it answers first. A page after that means Drive wants
/// a login: the file is not shared publicly.
async fn open_drive(base: &str, id: &str, description: String) -> Result<Source, SourceError> {
    let mut url = Url::parse(base).and_then(|base| base.join("uc")).map_err(|err| SourceError::Invalid {
        source_name: description.clone(),
        message: format!("bad Drive address {base}: {err}"),
    })?;
    url.query_pairs_mut().append_pair("export", "download").append_pair("id", id);
    let client = http_client(&description)?;
    let response = get(&client, url.clone()).await?;
    if !is_html_page(&response) {
        return Ok(stream_response(response, description));
    }
    let page_url = response.url().clone();
    let page = read_page(response, &description).await?;
    let Some(confirmed) = confirmation_url(&page, &page_url) else {
        return Err(SourceError::DriveNotShared { url: description });
    };
    let response = get(&client, confirmed).await?;
    if is_html_page(&response) {
        return Err(SourceError::DriveNotShared { url: description });
    }
    Ok(stream_response(response, description))
}

/// Whether an answer is a web page rather than a file: HTML, and not sent as an attachment.
fn is_html_page(response: &reqwest::Response) -> bool {
    let headers = response.headers();
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    header("content-type").starts_with("text/html")
        && !header("content-disposition").starts_with("attachment")
}

/// Reads an HTML page, up to [`MAX_PAGE_BYTES`] (a page is small; the rest is ignored).
async fn read_page(response: reqwest::Response, description: &str) -> Result<String, SourceError> {
    let mut stream = response.bytes_stream();
    let mut page = Vec::new();
    while let Some(chunk) =
        stream.try_next().await.map_err(|error| SourceError::Http { url: description.to_owned(), error })?
    {
        page.extend_from_slice(&chunk);
        if page.len() >= MAX_PAGE_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&page).into_owned())
}

/// The URL Drive's "download anyway" form submits to: its action (relative to the page) with
/// its named inputs as the query. `None` when the page has no such form.
fn confirmation_url(page: &str, page_url: &Url) -> Option<Url> {
    let forms = html_forms(page);
    let form = forms
        .iter()
        .find(|form| form.id.as_deref() == Some("download-form"))
        .or_else(|| forms.iter().find(|form| form.action.contains("download")))?;
    let mut url = page_url.join(&form.action).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in &form.inputs {
            query.append_pair(name, value);
        }
    }
    Some(url)
}

/// A form found in a page: its id, action, and named inputs other than buttons.
#[derive(Debug, Default)]
struct HtmlForm {
    id: Option<String>,
    action: String,
    inputs: Vec<(String, String)>,
}

/// The forms of a page, found by scanning tags (enough for Drive's plain confirmation page;
/// not a general HTML parser).
fn html_forms(page: &str) -> Vec<HtmlForm> {
    let mut forms = Vec::new();
    let mut current: Option<HtmlForm> = None;
    for tag in tags(page) {
        let (name, attrs) = split_tag(tag);
        match name.as_str() {
            "form" => {
                current = Some(HtmlForm {
                    id: attribute(attrs, "id"),
                    action: attribute(attrs, "action").unwrap_or_default(),
                    inputs: Vec::new(),
                });
            }
            "/form" => forms.extend(current.take()),
            "input" => {
                let kind = attribute(attrs, "type").unwrap_or_default().to_ascii_lowercase();
                let is_button = matches!(kind.as_str(), "submit" | "button" | "image" | "reset");
                if let (Some(form), Some(name), false) =
                    (current.as_mut(), attribute(attrs, "name"), is_button)
                {
                    form.inputs.push((name, attribute(attrs, "value").unwrap_or_default()));
                }
            }
            _ => {}
        }
    }
    forms.extend(current);
    forms
}

/// The text inside each `<...>` of a page.
fn tags(page: &str) -> impl Iterator<Item = &str> {
    page.split('<').skip(1).filter_map(|part| part.split_once('>').map(|(tag, _)| tag))
}

/// A tag's lower-cased name and the rest (its attributes).
fn split_tag(tag: &str) -> (String, &str) {
    let tag = tag.trim_end_matches('/');
    let end = tag.find(|c: char| c.is_ascii_whitespace()).unwrap_or(tag.len());
    (tag[..end].to_ascii_lowercase(), &tag[end..])
}

/// One attribute's value (quoted with `"` or `'`, or bare), entities decoded.
fn attribute(attrs: &str, wanted: &str) -> Option<String> {
    let mut rest = attrs.trim_start();
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| c == '=' || c.is_ascii_whitespace()).unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let mut value = "";
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (found, remaining) = attribute_value(after);
            value = found;
            rest = remaining.trim_start();
        }
        if name.eq_ignore_ascii_case(wanted) {
            return Some(decode_entities(value));
        }
        if name_end == 0 && value.is_empty() {
            // A stray character such as a lone '=': skip it rather than loop.
            rest = rest.get(1..).unwrap_or("");
        }
    }
    None
}

/// Splits a value off the start of `text`: quoted, or up to the next space.
fn attribute_value(text: &str) -> (&str, &str) {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote) {
            return match inner.find(quote) {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            };
        }
    }
    let end = text.find(|c: char| c.is_ascii_whitespace()).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// Decodes the entities that appear in attribute values (`&amp;`, `&quot;`, numeric ones...).
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded =
            rest.find(';').filter(|&end| end <= 10).and_then(|end| Some((entity(&rest[1..end])?, end)));
        match decoded {
            Some((ch, end)) => {
                out.push(ch);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity name (between `&` and `;`) stands for.
fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "lt" => Some('<'),
        "gt" => Some('>'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Query parameters whose values are secrets (presigned URLs, tokens, API keys).
fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["signature", "credential", "token", "secret", "password", "key", "sig", "auth"]
        .iter()
        .any(|secret| name.contains(secret))
}

/// The source as shown to people: a URL's password and secret query values replaced by `***`.
/// Anything that is not a URL (a path, `s3://`) is shown as is.
pub fn mask_credentials(source: &str) -> String {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return source.to_owned();
    }
    let Ok(mut url) = Url::parse(source) else {
        return source.to_owned();
    };
    if url.password().is_some() {
        // Setting a password cannot fail on an http(s) URL that already has one.
        let _ = url.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> =
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if pairs.iter().any(|(name, _)| is_secret_parameter(name)) {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (name, value) in &pairs {
            query.append_pair(name, if is_secret_parameter(name) { "***" } else { value });
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A canned answer of the test server.
    #[derive(Debug, Clone)]
    struct Reply {
        status: u16,
        content_type: &'static str,
        body: Arc<Vec<u8>>,
    }

    /// Starts an HTTP/1.1 server on 127.0.0.1 that answers each request with `route(path)`
    /// (the path with its query), streaming the body in pieces. Returns its base URL.
    async fn serve(route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let route = Arc::new(route);
        let own = base.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let route = route.clone();
                let own = own.clone();
                tokio::spawn(async move {
                    let _ = answer(socket, &*route, &own).await;
                });
            }
        });
        base
    }

    /// Reads one request head and writes the routed answer.
    async fn answer(
        socket: TcpStream,
        route: &(dyn Fn(&str, &str) -> Reply + Send + Sync),
        base: &str,
    ) -> io::Result<()> {
        let mut reader = BufReader::new(socket);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let reply = route(&path, base);
        let mut socket = reader.into_inner();
        let head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.status,
            reply.content_type,
            reply.body.len()
        );
        socket.write_all(head.as_bytes()).await?;
        for piece in reply.body.chunks(64 * 1024) {
            socket.write_all(piece).await?;
        }
        socket.shutdown().await
    }

    fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply { status, content_type, body: Arc::new(body) }
    }

    fn big_payload() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
    }

    async fn read_all(source: Source) -> Vec<u8> {
        let mut reader = source.reader;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    fn query_of(path: &str) -> HashMap<String, String> {
        let url = Url::parse(&format!("http://x{path}")).unwrap();
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[tokio::test]
    async fn local_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let shown = path.display().to_string();
        let source = open_source(&shown, &S3Settings::default()).await.unwrap();
        assert_eq!(source.size, Some(8));
        assert_eq!(source.description, shown);
        assert_eq!(read_all(source).await, b"a,b\n1,2\n");
        let url = format!("file://{shown}");
        assert_eq!(read_all(open_source(&url, &S3Settings::default()).await.unwrap()).await, b"a,b\n1,2\n");
    }

    #[tokio::test]
    async fn missing_local_file_is_not_found() {
        let err = open_source("/no/such/file.csv", &S3Settings::default()).await.unwrap_err();
        assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("/no/such/file.csv"), "{err}");
    }

    #[tokio::test]
    async fn http_streams_the_body() {
        let payload = Arc::new(big_payload());
        let served = payload.clone();
        let base = serve(move |path, _| match path {
            "/data.csv" => Reply { status: 200, content_type: "text/csv", body: served.clone() },
            _ => reply(404, "text/plain", b"no".to_vec()),
        })
        .await;
        let source = open_source(&format!("{base}/data.csv"), &S3Settings::default()).await.unwrap();
        assert_eq!(source.size, Some(payload.len() as u64));
        assert_eq!(read_all(source).await, *payload);

        let err = open_source(&format!("{base}/missing.csv"), &S3Settings::default()).await.unwrap_err();
        assert!(matches!(err, SourceError::HttpStatus { status: 404, .. }), "{err}");
        assert!(err.to_string().contains(&format!("{base}/missing.csv")), "{err}");
        assert!(err.to_string().contains("404"), "{err}");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn http_errors_mask_credentials() {
        let base = serve(|_, _| reply(403, "text/plain", Vec::new())).await;
        let url = format!("{}/f?X-Amz-Signature=abc123&part=1", base.replace("http://", "http://user:pw@"));
        let err = open_source(&url, &S3Settings::default()).await.unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("abc123") && !shown.contains(":pw@"), "{shown}");
        assert!(shown.contains("part=1") && shown.contains("403"), "{shown}");
    }

    #[tokio::test]
    async fn unreachable_http_says_why() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f.csv", listener.local_addr().unwrap());
        drop(listener);
        let err = open_source(&url, &S3Settings::default()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        let shown = err.to_string();
        assert!(shown.contains(&url) && shown.contains("refused"), "{shown}");
    }

    #[test]
    fn masking() {
        assert_eq!(mask_credentials("/data/t.csv"), "/data/t.csv");
        assert_eq!(mask_credentials("s3://b/k"), "s3://b/k");
        assert_eq!(mask_credentials("https://u:p@h/x?a=1"), "https://u:***@h/x?a=1");
        assert_eq!(
            mask_credentials("https://h/x?token=t&X-Amz-Credential=c&v=2"),
            "https://h/x?token=***&X-Amz-Credential=***&v=2"
        );
    }

    #[test]
    fn drive_ids() {
        let id = |s: &str| drive_file_id(&Url::parse(s).unwrap());
        assert_eq!(id("https://drive.google.com/file/d/1AbC_d-9/view?usp=sharing").unwrap(), "1AbC_d-9");
        assert_eq!(id("https://drive.google.com/open?id=XYZ").unwrap(), "XYZ");
        assert_eq!(id("https://drive.google.com/uc?id=Q1&export=download").unwrap(), "Q1");
        assert!(id("https://drive.google.com/drive/folders/F1").unwrap_err().contains("folder"));
        assert!(id("https://drive.google.com/").is_err());
        assert!(id("https://drive.google.com/open?id=a/b").is_err());
    }

    #[test]
    fn confirmation_form_of_a_real_looking_page() {
        let page = r#"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>
            <body><form id="download-form" action="https://drive.usercontent.google.com/download"
            method="get"><input type="submit" id="uc-download-link" value="Download anyway"/>
            <input type="hidden" name="id" value="1AbC"><input type="hidden" name="export" value="download">
            <input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid"
            value='u-1&amp;2'></form></body></html>"#;
        let url =
            confirmation_url(page, &Url::parse("https://drive.google.com/uc?id=1AbC").unwrap()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://drive.usercontent.google.com/download?id=1AbC&export=download&confirm=t&uuid=u-1%262"
        );
        assert!(confirmation_url("<html><body>Sign in</body></html>", &url).is_none());
        assert_eq!(decode_entities("a&amp;b&#39;c&#x41;&bogus;"), "a&b'cA&bogus;");
    }

    /// A fake Drive: `/uc` answers the confirmation page, whose form leads to `/download`.
    /// With `shared` false, `/download` answers a login page instead of the file.
    async fn fake_drive(payload: Arc<Vec<u8>>, shared: bool) -> String {
        serve(move |path, base| {
            let query = query_of(path);
            if path.starts_with("/uc?") {
                assert_eq!(query.get("export").map(String::as_str), Some("download"));
                assert_eq!(query.get("id").map(String::as_str), Some("FILE1"));
                let page = format!(
                    "<html><body><p>Google Drive can't scan this file for viruses.</p>\
                     <form id=\"download-form\" action=\"{base}/download\" method=\"get\">\
                     <input type=\"submit\" value=\"Download anyway\"/>\
                     <input type=\"hidden\" name=\"id\" value=\"FILE1\">\
                     <input type=\"hidden\" name=\"export\" value=\"download\">\
                     <input type=\"hidden\" name=\"confirm\" value=\"t\">\
                     <input type=\"hidden\" name=\"uuid\" value=\"abc-123\"></form></body></html>"
                );
                return reply(200, "text/html; charset=utf-8", page.into_bytes());
            }
            let confirmed = query.get("confirm").map(String::as_str) == Some("t")
                && query.get("uuid").map(String::as_str) == Some("abc-123")
                && query.get("id").map(String::as_str) == Some("FILE1");
            if path.starts_with("/download?") && confirmed && shared {
                return Reply {
                    status: 200,
                    content_type: "application/octet-stream",
                    body: payload.clone(),
                };
            }
            if path.starts_with("/download?") && confirmed {
                return reply(200, "text/html; charset=utf-8", b"<html>Sign in</html>".to_vec());
            }
            reply(400, "text/plain", b"bad request".to_vec())
        })
        .await
    }

    #[tokio::test]
    async fn drive_large_file_goes_through_the_confirmation_form() {
        let payload = Arc::new(big_payload());
        let base = fake_drive(payload.clone(), true).await;
        let options = SourceOptions { drive_base: Some(base) };
        let link = "https://drive.google.com/file/d/FILE1/view?usp=sharing";
        let source = open_source_with(link, &S3Settings::default(), &options).await.unwrap();
        assert_eq!(source.description, link);
        assert_eq!(source.size, Some(payload.len() as u64));
        assert_eq!(read_all(source).await, *payload);
    }

    #[tokio::test]
    async fn drive_small_file_is_served_at_once() {
        let base = serve(|path, _| {
            assert!(path.starts_with("/uc?"), "{path}");
            reply(200, "application/octet-stream", b"small".to_vec())
        })
        .await;
        let options = SourceOptions { drive_base: Some(base) };
        let link = "https://drive.google.com/open?id=FILE1";
        let source = open_source_with(link, &S3Settings::default(), &options).await.unwrap();
        assert_eq!(read_all(source).await, b"small");
    }

    #[tokio::test]
    async fn drive_not_shared() {
        let base = fake_drive(Arc::new(Vec::new()), false).await;
        let options = SourceOptions { drive_base: Some(base) };
        let link = "https://drive.google.com/uc?id=FILE1&export=download";
        let err = open_source_with(link, &S3Settings::default(), &options).await.unwrap_err();
        assert!(matches!(err, SourceError::DriveNotShared { .. }), "{err}");
        assert!(err.to_string().contains("not shared publicly"), "{err}");

        // A login page straight away (no form) says the same.
        let base = serve(|_, _| reply(200, "text/html", b"<html>Sign in</html>".to_vec())).await;
        let options = SourceOptions { drive_base: Some(base) };
        let err = open_source_with(link, &S3Settings::default(), &options).await.unwrap_err();
        assert!(matches!(err, SourceError::DriveNotShared { .. }), "{err}");
    }

    #[tokio::test]
    async fn s3_source_needs_bucket_and_key() {
        let err = open_source("s3://bucket-only", &S3Settings::default()).await.unwrap_err();
        assert!(matches!(err, SourceError::Invalid { .. }), "{err}");
    }
}
