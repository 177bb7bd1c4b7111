//! A real browser for tests: Debian's headless `chromium`, driven over WebDriver through a
//! `chromedriver` this module spawns on a free loopback port (plain HTTP: no TLS).
//!
//! [`Browser`] owns the chromedriver process (killed with its whole process group, so chromium too, when
//! the `Browser` is dropped), the WebDriver session, and a fresh temporary profile directory. Its
//! helpers panic with a message saying what was looked for and where, since they serve tests only.
//! Missing packages fail the test with the command that installs them (`scripts/test.sh` runs it); a
//! test needing a browser never skips.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// The browser binary (Debian's package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The WebDriver server for it (Debian's package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The packages to install when either binary is missing.
const INSTALL: &str = "apt-get install chromium chromium-driver";

/// How long chromedriver may take to answer `GET /status` with `ready`.
const DRIVER_START: Duration = Duration::from_secs(20);

/// The PNG file signature, which every screenshot starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// A headless chromium, its chromedriver and one WebDriver session on it.
pub struct Browser {
    client: Client,
    driver: Child,
    /// The browser's profile (`profile/`) and chromedriver's log; removed when the `Browser` goes.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Spawns chromedriver on a free port, waits until it is ready and opens a session on a headless
    /// chromium with a fresh profile. Panics when chromium or chromedriver is not installed, or when
    /// either does not start.
    pub async fn start() -> Browser {
        for (binary, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !std::path::Path::new(binary).exists() {
                panic!(
                    "{binary} is missing: browser tests need Debian's {package}. Install it with `{INSTALL}` \
                     (scripts/test.sh does)"
                );
            }
        }
        let dir = tempfile::tempdir().expect("temp dir for the browser profile");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        // Another process may take the free port between our probe and chromedriver's bind: try again.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so that drop can kill chromium (chromedriver's child) with it.
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER} ({e}); install it with `{INSTALL}`"));
            let driver_url = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut driver, &driver_url).await {
                Ok(()) => {
                    let client = connect(&driver_url, &profile).await.unwrap_or_else(|e| {
                        panic!("chromedriver at {driver_url} did not start {CHROMIUM}: {e}\n{}", tail(&log))
                    });
                    return Browser { client, driver, _dir: dir };
                }
                Err(e) => {
                    kill_group(&mut driver);
                    failures.push(format!("port {port}: {e}"));
                }
            }
        }
        panic!("chromedriver did not become ready: {}\n{}", failures.join("; "), tail(&log));
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The URL of the current page.
    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap_or_else(|e| panic!("cannot read the current URL: {e}")).to_string()
    }

    /// The first element matching the CSS selector `css`; panics naming the page when none does.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element matches `{css}` on {}: {e}", self.url().await),
        }
    }

    /// Every element matching the CSS selector `css`, in document order (none is no error).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        match self.client.find_all(Locator::Css(css)).await {
            Ok(elements) => elements,
            Err(e) => panic!("cannot look for `{css}` on {}: {e}", self.url().await),
        }
    }

    /// The rendered text of the first element matching `css` (as a user sees it: hidden text is not
    /// included).
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element.text().await.unwrap_or_else(|e| panic!("cannot read the text of `{css}`: {e}"))
    }

    /// The rendered text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.find_all(css).await {
            texts.push(element.text().await.unwrap_or_else(|e| panic!("cannot read the text of `{css}`: {e}")));
        }
        texts
    }

    /// Whether some element matches `css`.
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        element.click().await.unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Clears the input matching `css` and types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        element.clear().await.unwrap_or_else(|e| panic!("cannot clear `{css}`: {e}"));
        element.send_keys(value).await.unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    /// Chooses the `<option>` whose value is `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        element
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("cannot choose the option of value {value:?} in `{css}`: {e}"));
    }

    /// Submits the form matching `form_css`: clicks its submit button as a user would, or submits it
    /// directly when it has none.
    pub async fn submit(&self, form_css: &str) {
        let form = match self.client.form(Locator::Css(form_css)).await {
            Ok(form) => form,
            Err(e) => panic!("no form matches `{form_css}` on {}: {e}", self.url().await),
        };
        let buttons = format!("{form_css} input[type=submit], {form_css} button[type=submit]");
        let submitted = if self.exists(&buttons).await { form.submit().await } else { form.submit_direct().await };
        submitted.unwrap_or_else(|e| panic!("cannot submit `{form_css}`: {e}"));
    }

    /// Waits until the text of the first element matching `css` contains `needle`, looking every 100
    /// ms; past `timeout` it panics with the last text seen.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(element) = self.find_all(css).await.into_iter().next() {
                // The element may be replaced between finding and reading it: look again then.
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return;
                    }
                    last = Some(text);
                }
            }
            if Instant::now() >= deadline {
                let seen = match last {
                    Some(text) => format!("its last text was {text:?}"),
                    None => "no element matched".to_string(),
                };
                panic!("`{css}` did not contain {needle:?} within {timeout:?} on {}: {seen}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current page's source (the DOM as it is now, serialized).
    pub async fn html(&self) -> String {
        self.client.source().await.unwrap_or_else(|e| panic!("cannot read the page source: {e}"))
    }

    /// Runs the JavaScript `js` in the page (`arguments` holds `args`) and answers what it returns.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Value {
        self.client.execute(js, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{js}"))
    }

    /// The value of the cookie `name` of the current page, if it has one.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.client.get_all_cookies().await.unwrap_or_else(|e| panic!("cannot read cookies: {e}"));
        cookies.into_iter().find(|c| c.name() == name).map(|c| c.value().to_string())
    }

    /// Sets the cookie `name` to `value` (path `/`, `SameSite=Lax`) for the current page's host: open a
    /// page of it first.
    pub async fn set_cookie(&self, name: &str, value: &str) {
        let url = self.client.current_url().await.unwrap_or_else(|e| panic!("cannot read the current URL: {e}"));
        let host = url.host_str().unwrap_or_else(|| panic!("{url} has no host to set cookie {name} for"));
        // Spelled out: left out, fantoccini sends `domain: null` (which chromedriver rejects) and
        // `SameSite=None` (which chromium refuses on a cookie that is not `Secure`). Parsed, as fantoccini
        // does not re-export `SameSite`; that also checks the name and value are cookie syntax.
        let mut cookie = Cookie::parse(format!("{name}={value}; Path=/; SameSite=Lax"))
            .unwrap_or_else(|e| panic!("{name}={value} is no cookie: {e}"));
        cookie.set_domain(host.to_string());
        self.client.add_cookie(cookie).await.unwrap_or_else(|e| panic!("cannot set cookie {name}: {e}"));
    }

    /// Deletes every cookie of the current page's site.
    pub async fn delete_all_cookies(&self) {
        self.client.delete_all_cookies().await.unwrap_or_else(|e| panic!("cannot delete cookies: {e}"));
    }

    /// Saves a PNG of the viewport as `NAME.png` in `$TAO_SCREENSHOT_DIR`, or else in
    /// `target/screenshots` of the crate (creating the directory), and answers its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("cannot take a screenshot: {e}"));
        let dir = match std::env::var_os("TAO_SCREENSHOT_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
        };
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Ends the WebDriver session (chromium quits), then stops chromedriver.
    pub async fn close(mut self) {
        self.client.clone().close().await.unwrap_or_else(|e| panic!("cannot end the WebDriver session: {e}"));
        self.driver.kill().await.unwrap_or_else(|e| panic!("cannot stop chromedriver: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After `close` chromedriver has exited; otherwise (a failed test) take chromium down with it.
        kill_group(&mut self.driver);
    }
}

/// A port nothing listened on a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Kills `driver`'s process group (chromedriver and the browser it started), if it still runs.
fn kill_group(driver: &mut Child) {
    if let (Ok(None), Some(pid)) = (driver.try_wait(), driver.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group chromedriver leads (it was spawned
        // with process_group(0), and has not been reaped: try_wait saw it running).
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = driver.start_kill();
}

/// Waits until chromedriver at `url` answers `GET /status` with `ready`, or exits, or
/// [`DRIVER_START`] passes.
async fn wait_ready(driver: &mut Child, url: &str) -> Result<(), String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("HTTP client");
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited ({status})"));
        }
        let last = match http.get(format!("{url}/status")).send().await {
            Ok(response) => match response.json::<Value>().await {
                Ok(body) if body["value"]["ready"] == json!(true) => return Ok(()),
                Ok(body) => format!("not ready: {body}"),
                Err(e) => format!("unreadable status: {e}"),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!("not ready within {DRIVER_START:?} ({last})"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A WebDriver session on headless chromium with the profile directory `profile`.
async fn connect(driver_url: &str, profile: &std::path::Path) -> Result<Client, String> {
    let capabilities = json!({
        "browserName": "chrome",
        // A page that never finishes loading fails the command instead of holding the test.
        "timeouts": { "pageLoad": 30_000, "script": 30_000 },
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                // Tests run as root, where chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                // Containers have a small /dev/shm: use /tmp for shared memory.
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("capabilities are an object") };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .map_err(|e| e.to_string())
}

/// The end of chromedriver's log, for a failure message.
fn tail(log: &std::path::Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(20);
            format!("chromedriver log ({}), last lines:\n{}", log.display(), lines[start..].join("\n"))
        }
        Err(e) => format!("no chromedriver log at {} ({e})", log.display()),
    }
}
