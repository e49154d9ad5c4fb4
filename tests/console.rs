//! The ops console (`orderctl console`) as an operator uses it: the built binary serving
//! on 127.0.0.1 against the stack (`--env-file` its `stack.env`), driven by a real
//! headless Chromium through chromedriver (WebDriver) for what a person does, and by
//! plain HTTP for what a browser must never be able to do. Both processes are started by
//! the test and killed by their PID when it ends, also when it fails.
//!
//! Chromium and chromedriver are Debian's (`/usr/bin/chromium`, `/usr/bin/chromedriver`):
//! `make browser` installs them, and `make test` runs it first. Without them the browser
//! tests fail saying so; they are never skipped.
//!
//! Every test saves what its browser shows as PNGs in `target/console-screenshots/` (or
//! `$CONSOLE_SCREENSHOTS`: `make screenshots` writes the README's into
//! `infra/orderctl/screenshots/`).
//!
//! Every test starts its console as an operator does and signs in with the URL it
//! printed (its launch secret); the tests of the secret itself, of other sites' requests
//! and of what no GET may change send their requests by hand.
//!
//! Looking at the dead-letter queue holds its messages for a moment and counts a receive
//! of each, so the tests that look at it take [`exclusive`] for writing, as does the one
//! that compares counts; the others take it for reading.

// The lock only orders this file's tests; each runs on its own thread's runtime, so a
// guard held across an await blocks no other task.
#![allow(clippy::await_holding_lock)]

use fantoccini::{Client, ClientBuilder, Locator};
use order_core::dead_letters::{DeadLetter, DeadLetterBody, DeadLetterQueue};
use order_core::store::OrderStore;
use order_core::{OrderId, OrderStatus};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::RwLockReadGuard;
use std::time::{Duration, Instant};
use system_tests::{
    exclusive, fault, root, shared, step_reference, unique_merchant, valid_order, workspace_binary,
    Stack, ENDED,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where most tests start, holding the lock for reading: the stack, an order it
/// accepted without starting its workflow, and the console serving against the stack.
async fn an_accepted_order_and_the_console(
) -> (RwLockReadGuard<'static, ()>, Stack, OrderId, Console) {
    let running = shared();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    (running, stack, id, Console::on_the_stack().await)
}

/// A process the test started, in a process group of its own: killed (the group, by
/// the process's PID) when dropped, so chromedriver's browser goes with it.
struct Started {
    child: Child,
}

impl Started {
    fn spawn(mut command: Command, what: &str) -> Started {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what} ({command:?}): {error}"));
        Started { child }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // The group's id is the process's PID (process_group(0)).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the console's and chromedriver's logs go: the stack's log directory.
fn log_file(name: &str) -> (std::fs::File, PathBuf) {
    let dir = PathBuf::from(std::env::var("LOCAL_STACK_DIR").unwrap_or_else(|_| "target".into()))
        .join("logs");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (file, path)
}

/// `orderctl console --port 0`, serving until dropped, and signed in as an operator is:
/// the URL it printed was opened once, which set its cookie.
struct Console {
    /// `http://127.0.0.1:<port>`, without the secret.
    url: String,
    /// The URL it printed: `http://127.0.0.1:<port>/?token=<secret>`.
    launch_url: String,
    /// Its launch secret.
    secret: String,
    /// `name=value`: the cookie the printed URL set.
    cookie: String,
    /// Its stderr: the JSON logs.
    log: PathBuf,
    /// What it printed on stdout after its first line (it should print nothing more).
    later_stdout: std::sync::Arc<std::sync::Mutex<String>>,
    _process: Started,
}

impl Console {
    /// The console on the stack the tests run against, as an operator starts it:
    /// `--env-file <stack dir>/stack.env`.
    async fn on_the_stack() -> Console {
        let stack_dir = std::env::var("LOCAL_STACK_DIR").unwrap_or_else(|_| {
            panic!("LOCAL_STACK_DIR is not set: run the tests with `make test`")
        });
        let env_file = Path::new(&stack_dir).join("stack.env");
        Console::start(&["--env-file", &env_file.display().to_string()], &[]).await
    }

    /// The console with these global `args` and environment, signed in.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Console {
        let binary = workspace_binary("orderctl");
        assert!(
            binary.exists(),
            "{} is missing: build the workspace first (`cargo build --workspace`; `make test` does)",
            binary.display()
        );
        let (log, log_path) = log_file("console");
        let mut command = Command::new(&binary);
        command
            .args(args)
            .args(["console", "--port", "0"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut process = Started::spawn(command, "orderctl console");
        let stdout = process.child.stdout.take().expect("stdout is piped");
        // The first line is the URL; read it on a thread so a silent console cannot hang
        // the test, and keep reading: anything printed later is kept for the tests.
        let (sender, receiver) = std::sync::mpsc::channel();
        let later_stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let later = later_stdout.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = sender.send(first);
            for line in lines.map_while(Result::ok) {
                if let Ok(mut later) = later.lock() {
                    later.push_str(&line);
                    later.push('\n');
                }
            }
        });
        let printed = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("orderctl console printed no URL within 30 s"));
        let launch_url = printed.trim().to_owned();
        let (url, secret) = launch_url
            .split_once("/?token=")
            .map(|(url, secret)| (url.to_owned(), secret.to_owned()))
            .unwrap_or_else(|| {
                panic!("the console printed {launch_url:?}, not its URL with ?token=")
            });
        assert!(url.starts_with("http://127.0.0.1:"), "console URL {url:?}");
        assert!(
            secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
            "the secret {secret:?} is not 64 hex digits"
        );
        // Signs in as a browser does: the printed URL answers with the cookie.
        let response = http().get(&launch_url).send().await;
        let response =
            response.unwrap_or_else(|error| panic!("the console did not answer: {error}"));
        assert_eq!(response.status().as_u16(), 303, "the printed URL");
        let cookie = set_cookie(&response)
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(!cookie.is_empty(), "the printed URL set no cookie");
        Console {
            url,
            launch_url,
            secret,
            cookie,
            log: log_path,
            later_stdout,
            _process: process,
        }
    }

    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }

    /// A client that sends the console's cookie, as the signed-in browser does, and
    /// leaves redirects to the test.
    fn signed_in(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let cookie = reqwest::header::HeaderValue::from_str(&self.cookie)
            .unwrap_or_else(|error| panic!("the cookie {:?}: {error}", self.cookie));
        headers.insert(reqwest::header::COOKIE, cookie);
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .expect("an HTTP client")
    }

    /// `GET path`, signed in, without following redirects; (status, body).
    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .signed_in()
            .get(format!("{}{path}", self.url))
            .send()
            .await;
        reply(response).await
    }

    /// `POST path` of `form`, signed in, from one of the console's own pages (its
    /// Origin); (status, body).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .signed_in()
            .post(format!("{}{path}", self.url))
            .header("origin", &self.url)
            .form(form)
            .send()
            .await;
        reply(response).await
    }

    /// The console's form token, read from one of its pages as a browser would.
    async fn token(&self, page_path: &str) -> String {
        let (status, page) = self.get(page_path).await;
        assert_eq!(status, 200, "{page_path}: {page}");
        form_token(&page).unwrap_or_else(|| panic!("no token in {page_path}: {page}"))
    }

    /// What the console wrote to stderr so far: its JSON logs.
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|error| panic!("{}: {error}", self.log.display()))
    }
}

/// The form token in a page of the console (its hidden `csrf` field).
fn form_token(page: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker)? + marker.len();
    page[start..].split('"').next().map(str::to_owned)
}

/// The response's `Set-Cookie`, or "" when it has none.
fn set_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// An HTTP client that sends no cookie (it never opened the printed URL) and leaves
/// redirects to the test.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

async fn reply(response: Result<reqwest::Response, reqwest::Error>) -> (u16, String) {
    let response = response.unwrap_or_else(|error| panic!("the console did not answer: {error}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A headless Chromium driven through chromedriver on a free port of 127.0.0.1.
struct Browser {
    client: Client,
    _driver: Started,
}

impl Browser {
    async fn open() -> Browser {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).exists(),
                "{path} ({what}) is missing: the browser tests need Debian's chromium and chromium-driver; `make browser` installs them (apt-get install -y chromium chromium-driver)"
            );
        }
        let port = local_stack::process::free_port().expect("a free port");
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log_file("chromedriver").0)
            .stderr(Stdio::null());
        let driver = Started::spawn(command, "chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync"
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|error| panic!("chromedriver would not start {CHROMIUM}: {error}"));
        Browser {
            client,
            _driver: driver,
        }
    }

    async fn goto(&self, url: &str) {
        if let Err(error) = self.client.goto(url).await {
            panic!("open {url}: {error}");
        }
    }

    /// Opens the URL the console printed, as the operator does first: the console sets
    /// its cookie and shows its start page.
    async fn sign_in(&self, console: &Console) {
        self.goto(&console.launch_url).await;
        self.wait_for_path("/").await;
        self.find("div.counts").await;
    }

    /// The query string of the page the browser shows.
    async fn query(&self) -> Option<String> {
        match self.client.current_url().await {
            Ok(url) => url.query().map(str::to_owned),
            Err(error) => panic!("the current URL: {error}"),
        }
    }

    /// The element `css` of the page, waiting up to 30 s for it.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(error) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("no {css} on the page ({error}):\n{page}")
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|error| panic!("the text of {css}: {error}"))
    }

    async fn click(&self, css: &str) {
        if let Err(error) = self.find(css).await.click().await {
            panic!("click {css}: {error}");
        }
    }

    async fn click_link(&self, text: &str) {
        let link = self.client.find(Locator::LinkText(text)).await;
        match link {
            Ok(link) => {
                if let Err(error) = link.click().await {
                    panic!("click the link {text:?}: {error}");
                }
            }
            Err(error) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("no link {text:?} ({error}):\n{page}")
            }
        }
    }

    /// Types `text` in the search box on top of every page and submits it.
    async fn search(&self, text: &str) {
        let field = self.find("header input[name=q]").await;
        if let Err(error) = field.send_keys(text).await {
            panic!("type {text:?}: {error}");
        }
        self.click("header button[type=submit]").await;
    }

    /// Waits up to 30 s until the browser shows the page at `path` (a click returns
    /// before the page it leads to, and its redirects, have loaded).
    async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = match self.client.current_url().await {
                Ok(url) => url.path().to_owned(),
                Err(error) => panic!("the current URL: {error}"),
            };
            if now == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the browser shows {now}, not {path}, after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves what the browser shows as `<name>.png` (see the module documentation).
    async fn screenshot(&self, name: &str) {
        let dir = std::env::var("CONSOLE_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join("target/console-screenshots"));
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|error| panic!("a screenshot: {error}"));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The ledger's view of an order, read directly.
async fn order_in_ledger(store: &OrderStore, id: &str) -> order_core::store::OrderRecord {
    let id = OrderId::parse(id).unwrap_or_else(|| panic!("{id} is not an order id"));
    store
        .require_order(&id)
        .await
        .unwrap_or_else(|error| panic!("order {id}: {error}"))
}

#[tokio::test]
async fn an_order_found_by_its_tracking_number_opens_on_its_timeline_and_its_serial_and_merchant_find_it_too(
) {
    let _running = shared();
    let stack = Stack::connect().await;
    let merchant = unique_merchant();
    let (id, arn) = stack.place(&valid_order(&merchant)).await;
    let view = stack.wait_for_status(&id, &["COMPLETED"]).await;
    let tracking = view["tracking_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!tracking.is_empty(), "no tracking number: {view}");
    let console = Console::on_the_stack().await;
    let browser = Browser::open().await;

    browser.sign_in(&console).await;
    browser.screenshot("statuses").await;
    browser.search(&tracking).await;
    let heading = browser.text("main h2").await;
    assert_eq!(heading, format!("Orders with tracking number {tracking}"));
    browser.screenshot("find").await;
    browser.click_link(&id).await;
    browser.wait_for_path(&format!("/orders/{id}")).await;
    assert_eq!(browser.text("dd.tracking").await, tracking);
    assert!(browser.text("h1").await.contains("COMPLETED"));
    let timeline = browser.text("table.timeline").await;
    for event in [
        "ValidateOrder",
        "ArrangeShipment",
        "AwaitDelivery",
        "CompleteOrder",
    ] {
        assert!(
            timeline.contains(event),
            "{event} not in the timeline:\n{timeline}"
        );
    }
    let link = browser.find("table.executions a.aws-console").await;
    let href = link.attr("href").await.ok().flatten().unwrap_or_default();
    let region = arn.split(':').nth(3).unwrap_or_default();
    assert_eq!(
        href,
        format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}")
    );
    // The release the execution ran on: the version the alias `live` routed it to.
    let executions = browser.text("table.executions").await;
    assert!(
        executions.contains("version ") && executions.contains("(through live)"),
        "{executions}"
    );
    let steps = browser.text("table.steps").await;
    assert!(
        steps.contains(&format!("tracking_number={tracking}")),
        "{steps}"
    );
    browser.screenshot("order").await;
    browser.close().await;

    // The provisioned terminals' serials and the merchant find the same order.
    let serial = step_reference(&view, "ProvisionTerminals", "terminal_ids")
        .as_str()
        .and_then(|ids| ids.split(',').next())
        .unwrap_or_default()
        .to_owned();
    assert!(!serial.is_empty(), "no terminal serial: {view}");
    for (query, heading) in [
        (
            serial.clone(),
            format!("Orders with terminal serial {serial}"),
        ),
        (merchant.clone(), format!("Orders of merchant {merchant}")),
    ] {
        let (status, page) = console.get(&format!("/find?q={query}")).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains(&heading) && page.contains(&format!("/orders/{id}")),
            "{page}"
        );
    }
    // An order id goes straight to the order.
    let response = console
        .signed_in()
        .get(format!("{}/find?q={id}", console.url))
        .send()
        .await
        .unwrap_or_else(|error| panic!("the console did not answer: {error}"));
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        (response.status().as_u16(), location.as_deref()),
        (303, Some(format!("/orders/{id}").as_str()))
    );
}

#[tokio::test]
async fn cancelling_an_order_through_its_confirmation_page_shows_the_cancellation_and_who_asked_for_it(
) {
    let (_running, stack, id, console) = an_accepted_order_and_the_console().await;
    let browser = Browser::open().await;

    browser.sign_in(&console).await;
    browser.goto(&format!("{}/orders/{id}", console.url)).await;
    browser.click_link("Cancel…").await;
    browser.wait_for_path(&format!("/orders/{id}/cancel")).await;
    assert_eq!(browser.text("h1").await, format!("Cancel order {id}"));
    assert!(browser
        .text("p.consequence")
        .await
        .contains("CANCELLED at once"));
    browser.screenshot("confirm").await;
    // Nothing has happened yet: the confirmation page only says what will.
    let before = order_in_ledger(&stack.store(), id.as_str()).await;
    assert_eq!(before.status, OrderStatus::Accepted);

    browser.click("form button.danger").await;
    let notice = browser.text("p.notice.acted").await;
    assert!(
        notice.contains("cancel") && notice.contains("CANCELLED"),
        "{notice}"
    );
    browser.wait_for_path(&format!("/orders/{id}")).await;
    assert!(browser.text("h1 .status").await.contains("CANCELLED"));
    let audit = browser.text("table.audit").await;
    assert!(audit.contains("started: the order is CANCELLED"), "{audit}");
    browser.screenshot("cancelled").await;
    browser.close().await;

    let after = order_in_ledger(&stack.store(), id.as_str()).await;
    assert_eq!(
        (after.status, after.version),
        (OrderStatus::Cancelled, 2),
        "ended in the one write that found nothing begun"
    );
    let trail = stack.store().audit_trail(&id).await.unwrap_or_default();
    let recorded: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| (r.action.as_str(), r.outcome_text()))
        .collect();
    assert_eq!(recorded, [("cancel", "started: the order is CANCELLED")]);
    // Who: the caller's identity as STS gives it for the stack's credentials.
    assert!(trail[0].who.starts_with("arn:aws:"), "{:?}", trail[0]);
    assert!(audit.contains(&trail[0].who), "{audit}");
}

#[tokio::test]
async fn a_declined_orders_page_says_why_it_failed_and_shows_its_rollback() {
    let _running = shared();
    let stack = Stack::connect().await;
    let (id, _) = stack
        .place_under(&[fault("payments", "charge", "refuse")])
        .await;
    stack.wait_for_status(&id, &ENDED).await;
    let failure = order_in_ledger(&stack.store(), &id)
        .await
        .failure
        .unwrap_or_else(|| panic!("order {id} has no failure"));
    let console = Console::on_the_stack().await;
    let browser = Browser::open().await;

    browser.sign_in(&console).await;
    browser.search(&id).await;
    browser.wait_for_path(&format!("/orders/{id}")).await;
    let why = browser.text("div.why").await;
    assert!(
        why.contains("TakePayment")
            && why.contains("Payment.Declined")
            && why.contains(&failure.reason),
        "{why} (the ledger says: {failure:?})"
    );
    let steps = browser.text("table.steps").await;
    assert!(
        steps.lines().any(|l| l.contains("ReleaseStock")
            && l.contains("compensation")
            && l.contains("SUCCEEDED")),
        "{steps}"
    );
    browser.screenshot("failed").await;
    browser.close().await;
}

/// Sends a dead letter about order `id` to the workflow dead-letter queue, as the
/// reconciler does when it gives up on an order.
async fn send_dead_letter_about(queue: &DeadLetterQueue, id: &OrderId) {
    let body = DeadLetterBody {
        order_id: id.to_string(),
        execution_arn: None,
        failed_step: None,
        error: Some("Reconciler.GaveUp".into()),
        cause: Some("test: parked for an operator".into()),
        at: None,
        source: "reconciler".into(),
    };
    queue
        .send(&body)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

/// The queue's messages about order `id`, looked at by the test itself (one more receive
/// of every message). A failed read fails the test: it is never taken for an empty queue.
async fn letters_about(queue: &DeadLetterQueue, id: &OrderId) -> Vec<DeadLetter> {
    queue
        .look(10_000)
        .await
        .unwrap_or_else(|error| panic!("the test's own look at the queue failed: {error}"))
        .into_iter()
        .filter(|letter| letter.body.order_id == id.as_str())
        .collect()
}

/// The one message about order `id`.
async fn the_letter_about(queue: &DeadLetterQueue, id: &OrderId) -> DeadLetter {
    let mut letters = letters_about(queue, id).await;
    assert_eq!(letters.len(), 1, "messages about {id}: {letters:?}");
    letters.remove(0)
}

#[tokio::test]
async fn a_dead_letter_is_listed_and_replayed_through_its_confirmation_which_resumes_its_order() {
    let _alone = exclusive();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    let queue = stack.dead_letters();
    send_dead_letter_about(&queue, &id).await;
    let console = Console::on_the_stack().await;
    let token = console.token("/dead-letters").await;
    let (status, listed) = console
        .post("/dead-letters", &[("csrf", token.as_str())])
        .await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed.contains(id.as_str()), "{listed}");
    let letter = the_letter_about(&queue, &id).await;
    let (status, confirmation) = console
        .post(
            &format!("/dead-letters/{}", letter.message_id),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{confirmation}");
    assert!(
        confirmation.contains(&format!("Replay dead letter {}", letter.message_id)),
        "{confirmation}"
    );
    let token = form_token(&confirmation)
        .unwrap_or_else(|| panic!("no token in the confirmation: {confirmation}"));

    let (status, page) = console
        .post(
            &format!("/dead-letters/{}/replay", letter.message_id),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    // The execution the API would have started, recorded and started: it runs the order
    // to its end.
    let resumed = order_in_ledger(&stack.store(), id.as_str()).await;
    let arn = stack.execution_arn(id.as_str());
    assert_eq!(resumed.execution_arn.as_deref(), Some(arn.as_str()));
    let view = stack.wait_for_status(id.as_str(), &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(stack.execution_status(&arn).await, "SUCCEEDED");
    assert_eq!(
        letters_about(&queue, &id).await,
        [],
        "the message is deleted"
    );
    let trail = stack.store().audit_trail(&id).await.unwrap_or_default();
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(
        trail[0].action,
        format!("replay dead letter {}", letter.message_id)
    );
    assert!(
        trail[0]
            .outcome_text()
            .starts_with(&format!("resumed as {id}")),
        "{:?}",
        trail[0]
    );
}

#[tokio::test]
async fn a_signed_in_action_without_the_consoles_token_or_from_another_origin_or_host_changes_nothing(
) {
    let (_running, stack, id, console) = an_accepted_order_and_the_console().await;
    let path = format!("/orders/{id}/cancel");
    let url = format!("{}{path}", console.url);
    let token = console.token(&path).await;
    let signed_in = console.signed_in();
    let attempts = [
        ("no token", signed_in.post(&url).form(&[("confirm", "yes")])),
        (
            "a wrong token",
            signed_in
                .post(&url)
                .form(&[("csrf", "0".repeat(64).as_str())]),
        ),
        (
            "another site's page (Origin)",
            signed_in
                .post(&url)
                .header("origin", "http://attacker.example")
                .form(&[("csrf", token.as_str())]),
        ),
        (
            "another host name (DNS rebinding)",
            signed_in
                .post(&url)
                .header("host", format!("attacker.example:{}", console.port()))
                .form(&[("csrf", token.as_str())]),
        ),
    ];
    for (what, request) in attempts {
        let (status, page) = reply(request.send().await).await;
        assert_eq!(status, 403, "{what}: {page}");
    }
    let (status, page) = reply(
        signed_in
            .get(format!("{}/orders/{id}", console.url))
            .header(
                "host",
                format!("localhost.attacker.example:{}", console.port()),
            )
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 403, "a page for another host name: {page}");
    let order = order_in_ledger(&stack.store(), id.as_str()).await;
    assert_eq!((order.status, order.version), (OrderStatus::Accepted, 1));
    assert_eq!(stack.store().audit_trail(&id).await, Ok(Vec::new()));
}

/// The count each status's box on the start page shows; a page without them (an error
/// page) fails the test.
fn counts_on_the_start_page(page: &str) -> Vec<(OrderStatus, usize)> {
    OrderStatus::ALL
        .iter()
        .map(|status| {
            let link = format!("href=\"/orders?status={status}\"");
            let number = "class=\"n\">";
            let count = page
                .find(&link)
                .and_then(|at| page[at..].find(number).map(|n| at + n + number.len()))
                .and_then(|start| page[start..].split('<').next())
                .and_then(|digits| digits.trim().parse().ok())
                .unwrap_or_else(|| panic!("no count for {status} on the start page:\n{page}"));
            (*status, count)
        })
        .collect()
}

/// The start page's counts, which must be a 200.
async fn start_page_counts(console: &Console) -> Vec<(OrderStatus, usize)> {
    let (status, page) = console.get("/").await;
    assert_eq!(status, 200, "{page}");
    counts_on_the_start_page(&page)
}

/// Every status's count in the table, as the by-status index counts it.
async fn table_counts(store: &OrderStore) -> Vec<(OrderStatus, usize)> {
    let mut counts = Vec::new();
    for status in OrderStatus::ALL {
        let count = store
            .count_in_status(*status)
            .await
            .unwrap_or_else(|error| panic!("counting {status}: {error}"));
        counts.push((*status, count));
    }
    counts
}

#[tokio::test]
async fn lists_count_orders_by_status_and_show_unfinished_ones_by_how_long_they_have_not_moved() {
    // Alone, so that no other test's order changes a count while this one reads them.
    let _alone = exclusive();
    let stack = Stack::connect().await;
    let store = stack.store();
    let console = Console::on_the_stack().await;
    // The page shows what the table holds: compared when the table held still around it.
    let mut compared = false;
    for _ in 0..5 {
        let before = table_counts(&store).await;
        let shown = start_page_counts(&console).await;
        if table_counts(&store).await == before {
            assert_eq!(shown, before, "the start page's counts");
            compared = true;
            break;
        }
    }
    assert!(compared, "the table's counts changed during every read");
    // One more ACCEPTED order is one more on the page, and nothing else moves.
    let before = start_page_counts(&console).await;
    let id = stack.order_without_execution().await;
    let after = start_page_counts(&console).await;
    let expected: Vec<(OrderStatus, usize)> = before
        .iter()
        .map(|(status, count)| match status {
            OrderStatus::Accepted => (*status, count + 1),
            _ => (*status, *count),
        })
        .collect();
    assert_eq!(after, expected, "after one more ACCEPTED order");

    let (status, accepted) = console.get("/orders?status=accepted").await;
    assert_eq!(status, 200, "{accepted}");
    assert!(accepted.contains(id.as_str()), "{accepted}");
    // Every unfinished order has not moved for at least 0 minutes; ours not for a month.
    let (status, all) = console.get("/stuck?minutes=0").await;
    assert_eq!(status, 200, "{all}");
    assert!(all.contains(id.as_str()), "{all}");
    let (status, month) = console.get("/stuck?minutes=43200").await;
    assert_eq!(status, 200, "{month}");
    assert!(
        month.contains("has not changed for more than 43200 minutes")
            && !month.contains(id.as_str()),
        "{month}"
    );
    let (status, page) = console.get("/stuck?minutes=soon").await;
    assert_eq!(status, 400, "{page}");
}

#[tokio::test]
async fn an_unknown_order_gets_a_not_found_page_naming_its_id() {
    let _running = shared();
    let console = Console::on_the_stack().await;
    let id = OrderId::generate();
    let (status, page) = console.get(&format!("/orders/{id}")).await;
    assert_eq!(status, 404, "{page}");
    assert!(
        page.contains(&format!("order {id} does not exist")),
        "{page}"
    );
    let (status, page) = console.get("/orders/not-an-order").await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("order not-an-order does not exist"), "{page}");
}

#[tokio::test]
async fn an_unreachable_aws_endpoint_is_named_on_the_error_page() {
    let port = local_stack::process::free_port().expect("a free port");
    let endpoint = format!("http://127.0.0.1:{port}");
    let console = Console::start(
        &[],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "unused"),
            ("AWS_SECRET_ACCESS_KEY", "unused"),
            ("TABLE_NAME", "orders"),
        ],
    )
    .await;
    let (status, page) = console.get("/").await;
    assert_eq!(status, 502, "{page}");
    assert!(
        page.contains(&format!("cannot reach the AWS endpoint {endpoint}")),
        "{page}"
    );
}

#[tokio::test]
async fn twenty_resumers_racing_on_one_stopped_order_start_one_execution_that_completes_it_with_one_charge(
) {
    // Its execution stopped while it waits, charged, for provisioning to come back: eight
    // `orderctl orders resume`, six console resumes and six reconciler passes, all at once.
    let _running = shared();
    let stack = Stack::connect().await;
    let console = Console::on_the_stack().await;
    let merchant = stack
        .partners()
        .merchant_with(json!([{"partner": "terminals", "operation": "provision",
                               "fault": "unavailable", "for_ms": 8000}]))
        .await;
    let (id, arn) = stack.place(&valid_order(&merchant)).await;
    stack.wait_for_status(&id, &["PAYMENT_TAKEN"]).await;
    stack.stop_execution(&arn).await;
    // Stopped as Step Functions reports it (the console offers a resume only then).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stack.execution_status(&arn).await == "RUNNING" {
        assert!(std::time::Instant::now() < deadline, "{arn} still runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still long enough for the reconciler's grace period.
    stack.backdate(&id, 60).await;
    let confirmation = format!("/orders/{id}/resume");
    let token = console.token(&confirmation).await;

    let orderctl = workspace_binary("orderctl");
    let cli = (0..8).map(|_| {
        let mut command = tokio::process::Command::new(&orderctl);
        command.args(["orders", "resume", &id]);
        async move {
            let output = command.output().await;
            let output = output.unwrap_or_else(|error| panic!("orderctl: {error}"));
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr),
            )
        }
    });
    let url = format!("{}{confirmation}", console.url);
    let signed_in = console.signed_in();
    let posts = (0..6).map(|_| {
        let request = signed_in
            .post(&url)
            .header("origin", &console.url)
            .form(&[("csrf", token.as_str())]);
        async move { reply(request.send().await).await }
    });
    let passes = (0..6).map(|_| stack.reconcile(3));
    let (cli, posts, _) = tokio::join!(
        futures_util::future::join_all(cli),
        futures_util::future::join_all(posts),
        futures_util::future::join_all(passes)
    );

    // Each CLI resume either resumed it (exit 0) or was refused: someone else had (4).
    for (code, said) in &cli {
        assert!(matches!(code, Some(0) | Some(4)), "{code:?}: {said}");
    }
    for (status, page) in &posts {
        assert_eq!(*status, 303, "{page}");
    }
    let executions = stack.executions_of(&id).await;
    let resumed: Vec<&(String, String)> =
        executions.iter().filter(|(name, _)| name != &id).collect();
    assert_eq!(
        resumed
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>(),
        [format!("{id}-r1")],
        "exactly one execution resumed it: {executions:?}"
    );
    let order = order_in_ledger(&stack.store(), &id).await;
    assert_eq!(
        order.execution_arn.as_deref(),
        Some(stack.execution_arn(&format!("{id}-r1")).as_str()),
        "the recorded execution is the one that runs"
    );
    let view = stack.wait_for_status(&id, &ENDED).await;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let ledger = stack.partners().ledger(&id).await;
    assert_eq!(ledger.statuses("charges"), ["captured"], "{ledger:?}");
    // The console's and the CLI's resumes each left one audit record: at most one
    // resumed it (the reconciler's passes may have won instead), the others refused.
    let trail = match stack.store().audit_trail(&order.order_id).await {
        Ok(trail) => trail,
        Err(error) => panic!("reading the audit trail: {error}"),
    };
    assert_eq!(trail.len(), 6 + cli.len(), "{trail:?}");
    // Those that report it resumed all name the one execution: a resumer that finds the
    // winner's claimed execution not yet started starts it under its name, and both say so.
    let won: Vec<&str> = trail
        .iter()
        .map(|r| r.outcome_text())
        .filter(|outcome| outcome.starts_with("resumed as"))
        .collect();
    let one = format!("resumed as {id}-r1 ");
    assert!(
        won.iter().all(|outcome| outcome.starts_with(&one)),
        "{trail:?}"
    );
    let cli_won = cli.iter().filter(|(code, _)| *code == Some(0)).count();
    assert!(cli_won <= won.len(), "{trail:?} {cli:?}");
}

#[tokio::test]
async fn cancelling_a_charged_order_through_the_console_asks_its_workflow_to_roll_it_back_with_a_refund(
) {
    let _running = shared();
    let stack = Stack::connect().await;
    let console = Console::on_the_stack().await;
    let (id, _) = stack
        .place_under(&[fault("terminals", "provision", "unavailable")])
        .await;
    stack.wait_for_status(&id, &["PAYMENT_TAKEN"]).await;
    let confirmation = format!("/orders/{id}/cancel");
    let (status, page) = console.get(&confirmation).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("undoes what was done"),
        "says the workflow rolls it back: {page}"
    );
    let token = console.token(&confirmation).await;
    let (status, page) = console
        .post(&confirmation, &[("csrf", token.as_str())])
        .await;
    assert_eq!(status, 303, "{page}");
    let view = stack.wait_for_status(&id, &["CANCELLED", "FAILED"]).await;
    assert_eq!(view["status"], "CANCELLED", "{view}");
    let ledger = stack.partners().ledger(&id).await;
    ledger.assert_statuses(&[("reservations", &["released"]), ("charges", &["refunded"])]);
    let order = order_in_ledger(&stack.store(), &id).await;
    let trail = stack
        .store()
        .audit_trail(&order.order_id)
        .await
        .unwrap_or_default();
    let recorded: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| (r.action.as_str(), r.outcome_text()))
        .collect();
    assert_eq!(recorded, [("cancel", "started: the order is CANCELLING")]);
}

/// Every page and action of the console, with `id` an order and `message` a message id:
/// what the tests of the launch secret and of cross-site requests go through.
fn every_route(id: &OrderId, message: &str) -> Vec<String> {
    [
        "/",
        "/find?q=m-1",
        "/orders?status=ACCEPTED",
        "/stuck?minutes=0",
        "/dead-letters",
        "/console.css",
        "/no-such-page",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("/orders/{id}"),
        format!("/orders/{id}/cancel"),
        format!("/orders/{id}/resume"),
        format!("/dead-letters/{message}"),
        format!("/dead-letters/{message}/replay"),
    ])
    .collect()
}

/// What the page refusing a request without the launch secret says.
const OPEN_THE_PRINTED_URL: &str = "Open the URL the console printed";

#[tokio::test]
async fn every_page_and_action_is_refused_without_the_launch_secret_and_changes_nothing() {
    let (_running, stack, id, console) = an_accepted_order_and_the_console().await;
    // The form token of this console, as if it had leaked: it does not stand in for the
    // secret.
    let token = console.token(&format!("/orders/{id}/cancel")).await;
    let other = Console::on_the_stack().await;
    let name = format!("orders-console-{}", console.port());
    let cookies = [
        ("no cookie", None),
        ("a wrong secret", Some(format!("{name}={}", "0".repeat(64)))),
        (
            "another console's secret",
            Some(format!("{name}={}", other.secret)),
        ),
        (
            "its secret under another console's cookie name",
            Some(format!(
                "orders-console-{}={}",
                other.port(),
                console.secret
            )),
        ),
    ];
    let mut refused = 0;
    for path in every_route(&id, "no-such-message") {
        for (what, cookie) in &cookies {
            for method in [reqwest::Method::GET, reqwest::Method::POST] {
                let mut request = http()
                    .request(method.clone(), format!("{}{path}", console.url))
                    .header("origin", &console.url)
                    .form(&[("csrf", token.as_str())]);
                if let Some(cookie) = cookie {
                    request = request.header("cookie", cookie);
                }
                let (status, page) = reply(request.send().await).await;
                assert_eq!(status, 401, "{method} {path} with {what}: {page}");
                assert!(
                    page.contains(OPEN_THE_PRINTED_URL),
                    "{method} {path}: {page}"
                );
                assert!(
                    !page.contains("href=") && !page.contains("src="),
                    "the refusal needs nothing the console would refuse: {page}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 12 * 4 * 2);
    let order = order_in_ledger(&stack.store(), id.as_str()).await;
    assert_eq!(
        (order.status, order.version, order.execution_arn),
        (OrderStatus::Accepted, 1, None)
    );
    assert_eq!(stack.store().audit_trail(&id).await, Ok(Vec::new()));
}

#[tokio::test]
async fn the_printed_url_sets_an_http_only_same_site_strict_cookie_and_leads_to_the_same_page_without_the_secret(
) {
    let _running = shared();
    let console = Console::on_the_stack().await;
    let response = http()
        .get(format!(
            "{}/orders?status=ACCEPTED&token={}&x=1",
            console.url, console.secret
        ))
        .send()
        .await
        .unwrap_or_else(|error| panic!("the console did not answer: {error}"));
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        (response.status().as_u16(), location.as_deref()),
        (303, Some("/orders?status=ACCEPTED&x=1"))
    );
    assert_eq!(
        set_cookie(&response),
        format!(
            "orders-console-{}={}; HttpOnly; SameSite=Strict; Path=/",
            console.port(),
            console.secret
        ),
        "the cookie: HttpOnly, SameSite=Strict, Path=/; no Secure (plain http on the loopback address)"
    );
    // The cookie alone opens the page the redirect leads to.
    let (status, page) = console.get("/orders?status=ACCEPTED&x=1").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("ACCEPTED orders"), "{page}");
    // The secret was printed once, on the first line, and is in no log line.
    let logs = console.logs();
    assert!(
        logs.lines()
            .any(|line| line.contains(r#""path":"/orders""#) && line.contains(r#""status":303"#)),
        "the sign-in is logged: {logs}"
    );
    assert!(!logs.contains(&console.secret), "{logs}");
    let later = console
        .later_stdout
        .lock()
        .map(|printed| printed.clone())
        .unwrap_or_else(|_| panic!("the stdout reader panicked"));
    assert_eq!(later, "", "stdout after the URL");
}

#[tokio::test]
async fn a_wrong_secret_in_the_url_is_refused_and_sets_no_cookie() {
    let _running = shared();
    let console = Console::on_the_stack().await;
    let mut almost = console.secret.clone();
    let last = if almost.ends_with('0') { "1" } else { "0" };
    almost.replace_range(63.., last);
    for (what, token) in [
        ("another value", "0".repeat(64)),
        ("the secret but its last digit", almost),
        ("a prefix of the secret", console.secret[..32].to_owned()),
        ("nothing", String::new()),
    ] {
        for client in [http(), console.signed_in()] {
            let response = client
                .get(format!("{}/?token={token}", console.url))
                .send()
                .await
                .unwrap_or_else(|error| panic!("the console did not answer: {error}"));
            assert_eq!(response.status().as_u16(), 401, "{what}");
            assert_eq!(set_cookie(&response), "", "{what}");
            let page = response.text().await.unwrap_or_default();
            assert!(page.contains(OPEN_THE_PRINTED_URL), "{what}: {page}");
        }
    }
}

#[tokio::test]
async fn a_cross_site_request_is_refused_on_every_method_and_changes_nothing() {
    // Alone: the test counts the receives of its own dead letter.
    let _alone = exclusive();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    let queue = stack.dead_letters();
    send_dead_letter_about(&queue, &id).await;
    let letter = the_letter_about(&queue, &id).await;
    let console = Console::on_the_stack().await;
    let token = console.token(&format!("/orders/{id}/cancel")).await;
    let signed_in = console.signed_in();
    let routes = every_route(&id, &letter.message_id);
    // Everything a page on another site could make the browser send, with the cookie and
    // the form token as if both had leaked: only the site decides.
    for site in ["cross-site", "same-site"] {
        for path in &routes {
            for method in [reqwest::Method::GET, reqwest::Method::POST] {
                let request = signed_in
                    .request(method.clone(), format!("{}{path}", console.url))
                    .header("sec-fetch-site", site)
                    .header("origin", &console.url)
                    .form(&[("csrf", token.as_str()), ("order", id.as_str())]);
                let (status, page) = reply(request.send().await).await;
                assert_eq!(status, 403, "{method} {path} ({site}): {page}");
                assert!(page.contains(&format!("Sec-Fetch-Site: {site}")), "{page}");
            }
        }
    }
    // Nothing changed: the order, its audit, and the message (whose receives the test
    // counts: its own look before and after, nothing in between).
    let order = order_in_ledger(&stack.store(), id.as_str()).await;
    assert_eq!(
        (order.status, order.version, order.execution_arn),
        (OrderStatus::Accepted, 1, None)
    );
    assert_eq!(stack.store().audit_trail(&id).await, Ok(Vec::new()));
    let after = the_letter_about(&queue, &id).await;
    assert_eq!(
        (&after.message_id, after.receive_count),
        (&letter.message_id, letter.receive_count + 1)
    );
    // The same requests from the console's own pages (same-origin) pass.
    let (status, page) = reply(
        signed_in
            .get(format!("{}/orders/{id}", console.url))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    queue
        .delete(&after)
        .await
        .unwrap_or_else(|error| panic!("removing the test's message: {error}"));
}

#[tokio::test]
async fn the_dead_letter_pages_leave_the_messages_visible_and_their_receive_counts_unchanged_until_a_look_is_posted(
) {
    // Alone: the test counts the receives of its own dead letter.
    let _alone = exclusive();
    let stack = Stack::connect().await;
    let id = stack.order_without_execution().await;
    let queue = stack.dead_letters();
    send_dead_letter_about(&queue, &id).await;
    let letter = the_letter_about(&queue, &id).await;
    let console = Console::on_the_stack().await;

    let (status, page) = console.get("/dead-letters").await;
    assert_eq!(status, 200, "{page}");
    let counts = queue
        .counts()
        .await
        .unwrap_or_else(|error| panic!("the queue's counts: {error}"));
    assert!(counts.visible >= 1, "ours at least: {counts:?}");
    assert!(
        page.contains(&format!(
            r#"<span class="visible">{}</span>"#,
            counts.visible
        )) && page.contains(&format!(
            r#"<span class="in-flight">{}</span>"#,
            counts.in_flight
        )),
        "the page shows the queue's counts ({counts:?}): {page}"
    );
    assert!(!page.contains(&letter.message_id), "{page}");
    for path in [
        format!("/orders/{id}"),
        format!("/dead-letters/{}", letter.message_id),
        format!("/dead-letters/{}/replay", letter.message_id),
    ] {
        let (status, page) = console.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(!page.contains("Reconciler.GaveUp"), "{path}: {page}");
    }
    let after = the_letter_about(&queue, &id).await;
    assert_eq!(
        after.receive_count,
        letter.receive_count + 1,
        "only the test's own look received the message"
    );

    // The look the order page offers is a POST, and it receives the message once.
    let token = console.token(&format!("/orders/{id}")).await;
    let (status, page) = console
        .post(
            "/dead-letters",
            &[("csrf", token.as_str()), ("order", id.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("Dead letters about order {id}"))
            && page.contains(&letter.message_id),
        "{page}"
    );
    let looked = the_letter_about(&queue, &id).await;
    assert_eq!(looked.receive_count, letter.receive_count + 3);
    queue
        .delete(&looked)
        .await
        .unwrap_or_else(|error| panic!("removing the test's message: {error}"));
}

#[tokio::test]
async fn a_browser_sees_only_the_page_saying_to_open_the_printed_url_until_it_opens_it_which_sets_an_http_only_same_site_strict_cookie(
) {
    let _running = shared();
    let console = Console::on_the_stack().await;
    let browser = Browser::open().await;

    browser
        .goto(&format!("{}/stuck?minutes=0", console.url))
        .await;
    assert_eq!(browser.text("h1").await, OPEN_THE_PRINTED_URL);
    browser.screenshot("refused").await;
    // The printed URL, with another page and parameter: that page, without the secret.
    browser
        .goto(&format!(
            "{}/stuck?minutes=0&token={}",
            console.url, console.secret
        ))
        .await;
    browser.wait_for_path("/stuck").await;
    assert_eq!(browser.query().await.as_deref(), Some("minutes=0"));
    assert_eq!(browser.text("h1").await, "Stuck orders");
    let cookies = browser
        .client
        .get_all_cookies()
        .await
        .unwrap_or_else(|error| panic!("the browser's cookies: {error}"));
    let name = format!("orders-console-{}", console.port());
    let cookie = cookies
        .iter()
        .find(|cookie| cookie.name() == name)
        .unwrap_or_else(|| panic!("no cookie {name} in {cookies:?}"));
    assert_eq!(
        (
            cookie.value(),
            cookie.http_only(),
            format!("{:?}", cookie.same_site()),
            cookie.secure(),
            cookie.path()
        ),
        (
            console.secret.as_str(),
            Some(true),
            "Some(Strict)".to_owned(),
            Some(false),
            Some("/")
        ),
        "{cookie:?}"
    );
    // The cookie carries the browser from page to page.
    browser.click_link("Statuses").await;
    browser.wait_for_path("/").await;
    browser.find("div.counts").await;
    browser.close().await;
}

#[tokio::test]
async fn a_form_and_a_link_on_another_site_are_refused_in_the_browser_and_change_nothing() {
    let (_running, stack, id, console) = an_accepted_order_and_the_console().await;
    let token = console.token(&format!("/orders/{id}/cancel")).await;
    let browser = Browser::open().await;
    browser.sign_in(&console).await;
    // A page of another site (an opaque data: origin) holding a cancel form, complete with
    // the console's form token as if it had leaked, and a link to the order.
    let attack = format!(
        r#"<form method="post" action="{url}/orders/{id}/cancel"><input type="hidden" name="csrf" value="{token}"><button id="cancel" type="submit">win a prize</button></form><a id="link" href="{url}/orders/{id}">see</a>"#,
        url = console.url
    );
    let encoded: String = attack
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    let page = format!("data:text/html,{encoded}");
    for button in ["#cancel", "#link"] {
        browser.goto(&page).await;
        browser.click(button).await;
        let refusal = browser.text("p.error-message").await;
        assert!(
            refusal.contains("Sec-Fetch-Site: cross-site"),
            "{button}: {refusal}"
        );
    }
    browser.close().await;
    let order = order_in_ledger(&stack.store(), id.as_str()).await;
    assert_eq!((order.status, order.version), (OrderStatus::Accepted, 1));
    assert_eq!(stack.store().audit_trail(&id).await, Ok(Vec::new()));
}
