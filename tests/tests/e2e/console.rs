//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test.sh` installs), driven over
//! WebDriver against the app served on a loopback port. Without
//! `chromedriver` the browser cases say so and pass: everything else in the
//! suite still runs.
//!
//! Screenshots go to `$SWITCHBOARD_SCREENSHOTS` (default: a folder in the
//! system's temp dir); the README's images are two of them.

use e2e::api::Gateway;
use e2e::whatsapp::{Centre, ACCOUNT_SID, AUTH_TOKEN, BUSINESS_NUMBER};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CUSTOMER: &str = "+4917612345678";

/// A chromedriver of our own and a browser session on it, ended on drop.
struct Browser {
    client: Client,
    driver: Child,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends chromedriver, and with it the Chromium it started.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromedriver"))
            .find(|path| path.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A headless Chromium at 1280×800 on `gateway`, served over loopback;
    /// `None` (after saying why) when chromedriver is not installed.
    async fn open(gateway: &Gateway, test: &str) -> Option<Browser> {
        let Some(driver_path) = chromedriver() else {
            eprintln!(
                "console::{test}: skipped: chromedriver is not installed \
                 (scripts/test.sh installs Debian's chromium and chromium-driver)"
            );
            return None;
        };
        let addr = e2e::serve(&gateway.app).await;
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut options = Map::new();
        let mut chrome = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,800", "--lang=en-US",
        ]});
        if std::path::Path::new("/usr/bin/chromium").exists() {
            chrome["binary"] = json!("/usr/bin/chromium");
        }
        options.insert("goog:chromeOptions".into(), chrome);
        let webdriver = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(options.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => break client,
                Err(error) if started.elapsed() > Duration::from_secs(20) => {
                    panic!("chromedriver did not start a browser: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Some(Browser {
            client,
            driver,
            base: format!("http://{addr}"),
        })
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Waits (up to 20 s) until the JavaScript expression `condition` holds.
    async fn until(&self, what: &str, condition: &str) {
        let started = Instant::now();
        loop {
            let holds = self
                .client
                .execute(&format!("return !!({condition});"), vec![])
                .await
                .unwrap();
            if holds == Value::Bool(true) {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let text = self
                    .client
                    .execute("return document.body.innerText;", vec![])
                    .await
                    .unwrap();
                panic!("timed out waiting for {what}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn eval(&self, expression: &str) -> Value {
        self.client
            .execute(&format!("return ({expression});"), vec![])
            .await
            .unwrap()
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("{selector}: {error}"))
    }

    async fn type_into(&self, selector: &str, text: &str) {
        let element = self.css(selector).await;
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.unwrap();
    }

    /// Clicks the button whose text is `label`.
    async fn press(&self, label: &str) {
        let button = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(&format!(
                "//button[normalize-space(.)='{label}']"
            )))
            .await
            .unwrap_or_else(|error| panic!("button {label}: {error}"));
        button.click().await.unwrap();
    }

    /// Presses `keys` one after the other on whatever has the focus.
    async fn keys(&self, keys: &[Key]) {
        let mut actions = KeyActions::new("keyboard".into());
        for &key in keys {
            actions = actions
                .then(KeyAction::Down { value: key.into() })
                .then(KeyAction::Up { value: key.into() });
        }
        self.client.perform_actions(actions).await.unwrap();
        self.client.release_actions().await.unwrap();
    }

    /// The visible form controls without an accessible name, worked out in
    /// the page (`aria-labelledby`, `aria-label`, `label[for]`, a wrapping
    /// label, a button's text), each described for the failure message.
    async fn unnamed_controls(&self) -> Vec<String> {
        let found = self.eval(UNNAMED_CONTROLS).await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    async fn sign_in(&self, key: &str) {
        self.goto("/").await;
        self.type_into("input[name=key]", key).await;
        self.press("Sign in").await;
        self.until(
            "the signed-in header",
            "document.querySelector('.who .role')",
        )
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::env::var_os("SWITCHBOARD_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("switchboard-console"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("console: screenshot {}", path.display());
    }
}

/// A JavaScript expression: the visible inputs, selects, textareas and
/// buttons that have no accessible name, as `tag[name=…]#id "text"`.
const UNNAMED_CONTROLS: &str = r#"(() => {
  const text = (el) => (el.textContent || "").replace(/\s+/g, " ").trim();
  const visible = (el) =>
    el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const name = (el) => {
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean);
    const byIds = ids.map((id) => document.getElementById(id)).filter(Boolean).map(text).join(" ").trim();
    if (byIds) return byIds;
    const aria = (el.getAttribute("aria-label") || "").trim();
    if (aria) return aria;
    if (el.id) {
      const labels = [...document.querySelectorAll(`label[for="${CSS.escape(el.id)}"]`)].map(text).join(" ").trim();
      if (labels) return labels;
    }
    const wrapping = el.closest("label");
    if (wrapping && text(wrapping)) return text(wrapping);
    if (el.tagName === "BUTTON") return text(el);
    return "";
  };
  return [...document.querySelectorAll("input, select, textarea, button")]
    .filter((el) => el.type !== "hidden" && visible(el) && !name(el))
    .map((el) => `${el.tagName.toLowerCase()}[name=${el.getAttribute("name") || ""}]#${el.id} "${text(el).slice(0, 40)}"`);
})()"#;

/// The screen in `main` has loaded: a heading, no "Loading…".
const SCREEN_LOADED: &str =
    "document.querySelector('main h1') && !document.querySelector('main .state[role=status]')";

/// An agent who is away (so nothing is assigned to it by itself) and serves
/// the `general` queue, where a new WhatsApp conversation lands.
async fn away_agent(centre: &Centre) -> e2e::desk::AgentKey {
    e2e::desk::agent_with_key(
        &centre.gateway,
        &centre.org.key,
        json!({"name": "Ada Lovelace", "capacity": 3, "presence": "away",
               "queues": [centre.queue("general")], "languages": ["en"]}),
    )
    .await
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let gateway = Gateway::start(&[]).await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let answer = gateway.call("GET", path, None, None).await;
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        let csp = answer.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(answer.header("cache-control"), Some("no-cache"));
        let etag = answer.header("etag").unwrap().to_owned();
        let mut again = http::Request::builder()
            .uri(path)
            .header("host", "localhost:3000")
            .header("if-none-match", &etag);
        again = again.method("GET");
        let again = e2e::send(&gateway.app, again.body(bytes::Bytes::new()).unwrap()).await;
        assert_eq!(again.status(), 304, "{path}");
    }
    let head = e2e::send(
        &gateway.app,
        http::Request::builder()
            .method("HEAD")
            .uri("/console/app.js")
            .header("host", "localhost:3000")
            .body(bytes::Bytes::new())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status(), 200);
    assert!(head.text().is_empty());

    // No inline code anywhere, and customer text never parsed as markup.
    let index = gateway.call("GET", "/", None, None).await.text();
    assert!(!index.contains("<script>") && !index.contains("style="));
    for handler in ["onclick=", "onload=", "onerror=", "onsubmit="] {
        assert!(!index.contains(handler), "index.html has {handler}");
    }
    let app = gateway
        .call("GET", "/console/app.js", None, None)
        .await
        .text();
    for banned in [
        ".innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "eval(",
        "document.write",
    ] {
        assert!(!app.contains(banned), "app.js uses {banned}");
    }
}

/// The console's errors are the API's: JSON with a code, a message and
/// the request id (echoed in the header), whatever the path or method.
#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_the_apps_json_errors() {
    let gateway = Gateway::start(&[]).await;
    let call = |method: &str, path: &str, id: &str| {
        e2e::send(
            &gateway.app,
            http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost:3000")
                .header("x-request-id", id)
                .body(bytes::Bytes::new())
                .unwrap(),
        )
    };
    for path in [
        "/console/nothing.js",
        "/console/app.js/more",
        "/console/x/y",
    ] {
        let missing = call("GET", path, "console-404").await;
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(
            missing.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(missing.header("x-request-id"), Some("console-404"));
        let csp = missing.header("content-security-policy").unwrap();
        assert!(!csp.contains("unsafe"), "{csp}");
        let body = missing.json();
        let error = body["error"].as_object().expect("an error object");
        assert_eq!(error["code"], "not_found", "{body}");
        assert!(error["message"].as_str().unwrap().contains(path), "{body}");
        assert_eq!(error["request_id"], "console-404");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/", "/console/", "/console/app.js"] {
            let wrong = call(method, path, "console-405").await;
            assert_eq!(wrong.status(), 405, "{method} {path}");
            assert_eq!(wrong.header("allow"), Some("GET, HEAD"));
            assert_eq!(wrong.header("content-type"), Some("application/json"));
            let body = wrong.json();
            assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GET, HEAD"));
            assert_eq!(body["error"]["request_id"], "console-405");
        }
    }
}

#[tokio::test]
async fn an_agent_sees_a_message_arrive_accepts_replies_and_sees_it_delivered() {
    let centre = Centre::start("round_robin", false).await;
    let agent = away_agent(&centre).await;
    let Some(browser) = Browser::open(&centre.gateway, "inbox").await else {
        return;
    };
    browser.sign_in(&agent.key).await;
    browser
        .until(
            "the empty inbox",
            "document.querySelector('.inbox-list h2') && document.title === 'Switchboard'",
        )
        .await;
    assert_eq!(
        browser
            .eval("document.querySelector('#presence').value")
            .await,
        "away"
    );

    // A signed webhook arrives: the agent sees it without reloading.
    centre
        .customer_says("SM0001", CUSTOMER, "Hello, my parcel never came")
        .await;
    browser
        .until(
            "the new conversation in the queue list",
            "document.querySelector('.conv.unread .badge')",
        )
        .await;
    browser
        .until(
            "the title to announce it",
            "document.title.startsWith('(1)')",
        )
        .await;
    browser.click(".conv.unread").await;
    browser
        .until(
            "the customer's message",
            "[...document.querySelectorAll('.msg-customer .text')].some(e => e.textContent === 'Hello, my parcel never came')",
        )
        .await;
    browser.press("Accept").await;
    browser
        .until(
            "the conversation to be active",
            "document.querySelector('[data-state=active]')",
        )
        .await;
    browser
        .until(
            "the window countdown",
            "/Reply window closes in 2[0-9]:/.test(document.querySelector('.window-clock').textContent)",
        )
        .await;

    browser
        .type_into("textarea[name=text]", "Sorry to hear that! Let me check.")
        .await;
    assert_eq!(
        browser
            .eval("document.querySelector('.counter').textContent")
            .await,
        "33 / 1,600"
    );
    browser.press("Send").await;
    browser
        .until(
            "the reply in the thread",
            "[...document.querySelectorAll('.msg-agent .text')].some(e => e.textContent === 'Sorry to hear that! Let me check.')",
        )
        .await;
    assert_eq!(centre.sends().len(), 1);

    // The simulator's status callback: the status moves to delivered.
    let id = centre.conversations("state=active").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let conversation = centre.conversation(&id).await;
    let sid = conversation["messages"][1]["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let params: Vec<(String, String)> = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", ACCOUNT_SID),
        ("ChannelPrefix", "whatsapp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(centre.signed(&params).await.status(), 200);
    browser
        .until(
            "the delivered status",
            "document.querySelector('.msg-agent [data-status=delivered]')",
        )
        .await;
    browser.screenshot("agent-inbox").await;

    // At a phone's 390 px the open conversation takes the whole width.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .until(
            "the one-column layout",
            "getComputedStyle(document.querySelector('.inbox-list')).display === 'none' \
             && document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;
    browser.screenshot("agent-inbox-narrow").await;
    browser.client.set_window_size(1280, 800).await.unwrap();

    // 25 hours later only an approved template can be sent.
    centre
        .gateway
        .create(
            &centre.org.key,
            "/api/templates",
            json!({
                "name": "Follow-up", "channel_types": ["whatsapp"], "default_locale": "en-US",
                "versions": {"en-US": {"text": "Hello {{CustomerName}}, your case {{CaseName}} is still open.",
                                       "approved": true, "content_sid": format!("HX{}", "ab".repeat(16))}},
            }),
        )
        .await;
    centre
        .gateway
        .create(
            &centre.org.key,
            "/api/templates",
            json!({
                "name": "Unapproved", "channel_types": ["whatsapp"], "default_locale": "en-US",
                "versions": {"en-US": "Not approved yet"},
            }),
        )
        .await;
    centre
        .gateway
        .app
        .clock()
        .advance(Duration::from_secs(25 * 3600));
    browser
        .until(
            "the closed window",
            "document.querySelector('.window-clock.closed') && !document.querySelector('textarea[name=text]')",
        )
        .await;
    browser
        .until(
            "the approved template, alone, in the picker",
            "[...document.querySelectorAll('select[name=template_id] option')].map(o => o.textContent).join('|') === 'Choose a template…|Follow-up'",
        )
        .await;
    let select = browser.css("select[name=template_id]").await;
    select.select_by_label("Follow-up").await.unwrap();
    browser.type_into("input[name=CaseName]", "CAS-7").await;
    browser
        .until(
            "the preview",
            "document.querySelector('.preview').textContent === 'Hello Jane Doe, your case CAS-7 is still open.'",
        )
        .await;
    browser.press("Send template").await;
    browser
        .until(
            "the template in the thread",
            "document.querySelectorAll('.msg-agent').length === 2",
        )
        .await;
    let sent = centre.sends();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        e2e::whatsapp::field(&sent[1], "ContentSid"),
        Some(format!("HX{}", "ab".repeat(16)))
    );
}

#[tokio::test]
async fn a_customer_message_is_shown_as_text_and_runs_nothing() {
    let centre = Centre::start("round_robin", false).await;
    let agent = centre.agent("Ada Lovelace", 3, &["general"]).await;
    let Some(browser) = Browser::open(&centre.gateway, "xss").await else {
        return;
    };
    let attack = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script><b>bold</b>";
    centre.customer_says("SM0001", CUSTOMER, attack).await;
    browser.sign_in(&agent.key).await;
    browser.click(".conv").await;
    browser
        .until(
            "the message",
            "document.querySelector('.msg-customer .text')",
        )
        .await;
    // Give an `onerror` every chance to fire.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        browser
            .eval("document.querySelector('.msg-customer .text').textContent")
            .await,
        attack
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('.thread img, .thread script, .thread b').length")
            .await,
        0
    );
    assert_eq!(browser.eval("window.__xss === undefined").await, true);

    // A photo on a channel that takes no customer attachments: refused, and
    // the agent is told so.
    let photo = e2e::whatsapp::message_params(
        "SM0002",
        CUSTOMER,
        "see the photo",
        &[("https://api.twilio.com/media/ME1", "image/jpeg")],
    );
    assert_eq!(centre.signed(&photo).await.status(), 200);
    browser
        .until(
            "the refusal in the thread",
            "document.querySelector('.msg-customer .refused') && document.querySelector('.msg-customer .refused').textContent.startsWith('1 attachment')",
        )
        .await;
}

#[tokio::test]
async fn an_agent_key_cannot_open_the_admin_screens() {
    let centre = Centre::start("round_robin", false).await;
    let agent = centre.agent("Ada Lovelace", 3, &["general"]).await;
    let Some(browser) = Browser::open(&centre.gateway, "roles").await else {
        return;
    };
    browser.sign_in(&agent.key).await;
    assert_eq!(
        browser
            .eval("[...document.querySelectorAll('#nav a')].map(a => a.textContent).join('|')")
            .await,
        "Inbox|Contacts"
    );
    browser.goto("/#/admin/accounts").await;
    browser
        .until(
            "the refusal",
            "document.querySelector('.forbidden') && document.querySelector('.forbidden').textContent.includes('for admin keys')",
        )
        .await;
    // The key survives the reload (sessionStorage); signing out forgets it.
    browser.press("Sign out").await;
    browser
        .until(
            "the sign-in form",
            "document.querySelector('input[name=key]')",
        )
        .await;
    assert_eq!(
        browser.eval("sessionStorage.length").await,
        0,
        "the key is gone"
    );
    browser.goto("/#/inbox").await;
    browser
        .until(
            "the sign-in form after a reload",
            "document.querySelector('input[name=key]')",
        )
        .await;
}

#[tokio::test]
async fn an_admin_sets_up_a_whatsapp_channel_and_a_template_through_the_screens() {
    let twilio = e2e::sim::twilio(ACCOUNT_SID, AUTH_TOKEN);
    let gateway = Gateway::start(&[("twilio_api_base", &twilio.base())]).await;
    let org = gateway.new_org("Contoso Support").await;
    let Some(browser) = Browser::open(&gateway, "admin").await else {
        return;
    };
    browser.sign_in(&org.key).await;

    // A queue for the workstream.
    browser.goto("/#/admin/queues").await;
    browser.press("New queue").await;
    browser.type_into("[name=name]", "general").await;
    browser.press("Create queue").await;
    browser
        .until("the queue in the table", "document.querySelector('td') && document.querySelector('td').textContent === 'general'")
        .await;

    // The account: an error lands next to its field, then the fix saves.
    browser.goto("/#/admin/accounts").await;
    browser.click("a[href='#/admin/accounts/new-twilio']").await;
    browser.type_into("[name=name]", "WhatsApp EU").await;
    browser.type_into("[name=account_sid]", "AC123").await;
    browser.type_into("[name=auth_token]", AUTH_TOKEN).await;
    browser.press("Add number").await;
    browser
        .type_into("[name='numbers[0].name']", "Support")
        .await;
    browser
        .type_into("[name='numbers[0].number']", BUSINESS_NUMBER)
        .await;
    browser.press("Create account").await;
    browser
        .until(
            "the error next to account_sid",
            "document.getElementById(document.querySelector('[name=account_sid]').id + '-error').textContent.includes('AC')",
        )
        .await;
    browser.type_into("[name=account_sid]", ACCOUNT_SID).await;
    browser.type_into("[name=auth_token]", AUTH_TOKEN).await;
    browser.press("Create account").await;
    browser
        .until(
            "the callback URL to copy",
            "[...document.querySelectorAll('.copyable code')].some(c => c.textContent.includes('/webhooks/twilio/'))",
        )
        .await;
    assert_eq!(
        browser
            .eval("document.querySelector('[name=auth_token]').value")
            .await,
        "",
        "the secret is never shown back"
    );
    browser.press("Validate").await;
    browser
        .until(
            "the validation",
            "document.querySelector('.validation [data-validation=valid]')",
        )
        .await;
    browser.screenshot("admin-account").await;

    // The workstream with the number as its channel.
    browser.goto("/#/admin/workstreams").await;
    browser.press("New workstream").await;
    browser.type_into("[name=name]", "WhatsApp support").await;
    browser
        .css("[name=fallback_queue]")
        .await
        .select_by_label("general")
        .await
        .unwrap();
    browser.press("Add channel").await;
    browser
        .css("[name='channels[0].account_id']")
        .await
        .select_by_label("WhatsApp EU (twilio)")
        .await
        .unwrap();
    browser
        .type_into("[name='channels[0].address']", BUSINESS_NUMBER)
        .await;
    browser
        .type_into("[name='channels[0].language']", "en-US")
        .await;
    browser.press("Create workstream").await;
    browser
        .until(
            "the workstream in the table",
            "[...document.querySelectorAll('td')].some(td => td.textContent.includes('+14155238886 (en-US)'))",
        )
        .await;

    // A template with two locales, approved for WhatsApp, and its preview.
    browser.goto("/#/admin/templates/new").await;
    browser.type_into("[name=name]", "Case created").await;
    browser.click("[name=channel_types][value=whatsapp]").await;
    browser
        .type_into(
            "[name='versions.en-US.text']",
            "Hi {{CustomerName}}, we opened case {{CaseName}}.",
        )
        .await;
    browser.click("[name='versions.en-US.approved']").await;
    let sid = format!("HX{}", "0123456789abcdef".repeat(2));
    browser
        .type_into("[name='versions.en-US.content_sid']", &sid)
        .await;
    browser.type_into("#new-locale", "nb").await;
    browser.press("Add locale").await;
    browser
        .type_into(
            "[name='versions.nb.text']",
            "Hei {{CustomerName}}, vi har opprettet sak {{CaseName}}.",
        )
        .await;
    browser.press("Create template").await;
    browser
        .until(
            "the preview",
            "document.querySelector('.preview') && document.querySelector('.preview').textContent === 'Hi Kari, we opened case CAS-01042.'",
        )
        .await;
    browser.type_into("[name=locale]", "nb-NO").await;
    browser
        .until(
            "the Norwegian preview",
            "document.querySelector('.preview').textContent === 'Hei Kari, vi har opprettet sak CAS-01042.'",
        )
        .await;

    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto("/#/admin/accounts").await;
    browser
        .until(
            "the accounts at 390 px, without sideways scrolling",
            "document.querySelector('table') && document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;

    let templates = gateway
        .call("GET", "/api/templates", Some(&org.key), None)
        .await
        .json();
    let template = &templates["items"][0];
    assert_eq!(template["channel_types"], json!(["sms", "whatsapp"]));
    assert_eq!(template["versions"]["en-US"]["approved"], true);
    assert_eq!(template["versions"]["en-US"]["content_sid"], sid.as_str());
    assert_eq!(template["versions"]["nb"]["approved"], false);
    let workstreams = gateway
        .call("GET", "/api/workstreams", Some(&org.key), None)
        .await
        .json();
    assert_eq!(
        workstreams["items"][0]["channels"][0]["address"],
        BUSINESS_NUMBER
    );
}

/// A Twilio account's SMS numbers and shared keys through the screens: an
/// error lands next to the field the API names, a kept key's secret is
/// left out of the save (and still signs webhooks), and an SMS workstream
/// is offered the account's SMS number.
#[tokio::test]
async fn an_admin_adds_an_sms_number_and_a_shared_key_to_a_twilio_account() {
    const KEPT_ID: &str = "SK0123456789abcdef0123456789abcdef";
    const KEPT_SECRET: &str = "kept-shared-secret-1111";
    const NEW_ID: &str = "SKfedcba9876543210fedcba9876543210";
    const NEW_SECRET: &str = "new-shared-secret-2222";
    const SMS_NUMBER: &str = "+14155550100";
    let centre = Centre::start("round_robin", false).await;
    let account = format!("/api/accounts/{}", centre.account_id);
    let added = centre
        .gateway
        .call(
            "PATCH",
            &account,
            Some(&centre.org.key),
            Some(&json!({"shared_keys": [{"id": KEPT_ID, "secret": KEPT_SECRET}]})),
        )
        .await;
    assert_eq!(added.status(), 200, "{}", added.text());
    let Some(browser) = Browser::open(&centre.gateway, "twilio_sms").await else {
        return;
    };
    browser.sign_in(&centre.org.key).await;

    browser
        .goto(&format!("/#/admin/accounts/{}", centre.account_id))
        .await;
    browser.css("[name='shared_keys[0].id']").await;
    browser.press("Add SMS number").await;
    browser
        .type_into("[name='sms_numbers[0].name']", "Texts")
        .await;
    // An error about the whole list lands next to the list.
    browser
        .type_into("[name='sms_numbers[0].number']", BUSINESS_NUMBER)
        .await;
    browser.press("Save").await;
    browser
        .until(
            "the error next to the SMS numbers",
            "document.getElementById(document.querySelector('fieldset[name=sms_numbers]').id + '-error').textContent.includes('WhatsApp numbers')",
        )
        .await;
    browser
        .type_into("[name='sms_numbers[0].number']", "555")
        .await;
    browser.press("Add shared key").await;
    browser
        .type_into("[name='shared_keys[1].id']", NEW_ID)
        .await;
    browser
        .type_into("[name='shared_keys[1].secret']", NEW_SECRET)
        .await;
    // Adding a row keeps what the others showed: the kept key is masked.
    assert_eq!(
        browser
            .eval("document.querySelector(\"[name='shared_keys[0].secret']\").placeholder.includes('****1111')")
            .await,
        true
    );
    browser.press("Save").await;
    browser
        .until(
            "the error next to sms_numbers[0].number",
            "document.getElementById(document.querySelector(\"[name='sms_numbers[0].number']\").id + '-error').textContent.includes('555')",
        )
        .await;
    browser
        .type_into("[name='sms_numbers[0].number']", SMS_NUMBER)
        .await;
    browser.press("Save").await;
    browser
        .until(
            "the saved account, its new key masked",
            "document.querySelector(\"[name='shared_keys[1].secret']\") && document.querySelector(\"[name='shared_keys[1].secret']\").placeholder.includes('****2222')",
        )
        .await;
    browser.screenshot("admin-twilio-sms").await;

    let read = centre
        .gateway
        .call("GET", &account, Some(&centre.org.key), None)
        .await;
    assert_eq!(read.status(), 200, "{}", read.text());
    for secret in [KEPT_SECRET, NEW_SECRET, AUTH_TOKEN] {
        assert!(!read.text().contains(secret), "{}", read.text());
    }
    let read = read.json();
    assert_eq!(
        read["sms_numbers"],
        json!([{"name": "Texts", "number": SMS_NUMBER}])
    );
    assert_eq!(
        read["shared_keys"],
        json!([
            {"id": KEPT_ID, "secret": "****1111"},
            {"id": NEW_ID, "secret": "****2222"},
        ])
    );
    assert_eq!(
        read["numbers"],
        json!([{"name": "Support", "number": BUSINESS_NUMBER}])
    );
    // The kept key still has its own secret (not the masked text): a
    // webhook signed with it is taken, as is one signed with the new key.
    for (n, (id, secret)) in [(KEPT_ID, KEPT_SECRET), (NEW_ID, NEW_SECRET)]
        .into_iter()
        .enumerate()
    {
        let sid = format!("SMc{:031x}", n + 1);
        let params = e2e::whatsapp::message_params(&sid, CUSTOMER, "signed with a key", &[]);
        let taken = centre.signed_with_key(&params, id, secret).await;
        assert_eq!(taken.status(), 200, "{id}: {}", taken.text());
    }

    // An SMS workstream is offered the account's SMS number, not its
    // WhatsApp one.
    browser.goto("/#/admin/workstreams").await;
    browser.press("New workstream").await;
    browser.type_into("[name=name]", "SMS support").await;
    browser
        .css("[name=channel]")
        .await
        .select_by_label("sms")
        .await
        .unwrap();
    browser
        .css("[name=fallback_queue]")
        .await
        .select_by_label("general")
        .await
        .unwrap();
    browser.press("Add channel").await;
    browser
        .css("[name='channels[0].account_id']")
        .await
        .select_by_label("WhatsApp (twilio)")
        .await
        .unwrap();
    browser.click("[name='channels[0].address']").await;
    let offered = browser
        .eval("[...document.getElementById(document.querySelector(\"[name='channels[0].address']\").getAttribute('list')).options].map(o => o.value)")
        .await;
    assert_eq!(offered, json!([SMS_NUMBER]));
    browser
        .type_into("[name='channels[0].address']", SMS_NUMBER)
        .await;
    browser
        .type_into("[name='channels[0].language']", "en-US")
        .await;
    browser.press("Create workstream").await;
    browser
        .until(
            "the SMS workstream in the table",
            "[...document.querySelectorAll('td')].some(td => td.textContent.includes('+14155550100 (en-US)'))",
        )
        .await;
    let workstreams = centre
        .gateway
        .call("GET", "/api/workstreams", Some(&centre.org.key), None)
        .await
        .json();
    let sms = workstreams["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "SMS support")
        .expect("the SMS workstream");
    assert_eq!(sms["channel"], "sms");
    assert_eq!(sms["channels"][0]["account_id"], centre.account_id.as_str());
    assert_eq!(sms["channels"][0]["address"], SMS_NUMBER);
}

/// Waits for an account created through its screen: the console moves to
/// the account's own page. Its id, from the address.
async fn created_account(browser: &Browser, ready: &str) -> String {
    browser
        .until(
            "the created account's page",
            &format!(
                "/^#\\/admin\\/accounts\\/[0-9a-f]+$/.test(location.hash) && !document.querySelector('main .state[role=status]') && ({ready})"
            ),
        )
        .await;
    browser
        .eval("location.hash.split('/').pop()")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_admin_creates_a_telesign_account_through_the_screens() {
    use e2e::channels::{API_KEY, CUSTOMER_ID};
    let centre = Centre::start("round_robin", false).await;
    let Some(browser) = Browser::open(&centre.gateway, "telesign").await else {
        return;
    };
    browser.sign_in(&centre.org.key).await;
    browser.goto("/#/admin/accounts/new-telesign").await;
    browser.type_into("[name=name]", "Texts").await;
    browser.type_into("[name=customer_id]", CUSTOMER_ID).await;
    browser.type_into("[name=api_key]", API_KEY).await;
    browser.press("Add number").await;
    // A refused save: the API's error next to the field it names.
    browser
        .type_into("[name='numbers[0].number']", "+14252306549")
        .await;
    browser
        .css("[name='numbers[0].type']")
        .await
        .select_by_value("toll_free")
        .await
        .unwrap();
    browser
        .type_into("[name='numbers[0].description']", "Support line")
        .await;
    browser.press("Create account").await;
    browser
        .until(
            "the error next to numbers[0].number",
            "(() => { const input = document.querySelector(\"[name='numbers[0].number']\"); \
               const error = document.getElementById(input.id + '-error'); \
               return input.getAttribute('aria-invalid') === 'true' && error.textContent.trim() !== ''; })()",
        )
        .await;
    assert_eq!(
        browser.eval("location.hash").await,
        "#/admin/accounts/new-telesign",
        "nothing was created"
    );
    // What was typed is still there (the secret included) to correct.
    assert_eq!(
        browser
            .eval("document.querySelector('[name=api_key]').value")
            .await,
        API_KEY
    );
    browser
        .type_into("[name='numbers[0].number']", "14252306549")
        .await;
    browser.press("Create account").await;
    let id = created_account(
        &browser,
        "document.querySelector('[name=api_key]') && document.querySelector('[name=api_key]').placeholder.includes('****')",
    )
    .await;
    let html = browser.eval("document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap().contains(API_KEY),
        "the API key is in the page"
    );
    assert_eq!(
        browser
            .eval("document.querySelector(\"[name='numbers[0].type']\").value + '|' + document.querySelector(\"[name='numbers[0].description']\").value")
            .await,
        "toll_free|Support line"
    );
    browser.screenshot("admin-telesign").await;

    let read = centre
        .gateway
        .call(
            "GET",
            &format!("/api/accounts/{id}"),
            Some(&centre.org.key),
            None,
        )
        .await;
    assert_eq!(read.status(), 200, "{}", read.text());
    assert!(!read.text().contains(API_KEY), "{}", read.text());
    let read = read.json();
    assert_eq!(read["provider"], "telesign");
    assert_eq!(read["name"], "Texts");
    assert_eq!(read["customer_id"], CUSTOMER_ID);
    assert!(
        read["api_key"].as_str().unwrap().starts_with("****"),
        "{read}"
    );
    assert_eq!(
        read["numbers"],
        json!([{"number": "14252306549", "type": "toll_free", "description": "Support line"}])
    );
}

#[tokio::test]
async fn an_admin_creates_a_google_business_messages_account_through_the_screens() {
    use e2e::channels::{fixture, CLIENT_TOKEN};
    let service_account = fixture("google-service-account.json");
    let private_key: Value = serde_json::from_str(&service_account).unwrap();
    let private_key = private_key["private_key"].as_str().unwrap().to_owned();
    // A line from the middle of the key: the page never holds any of it.
    let key_line = private_key.lines().nth(2).unwrap().to_owned();
    let centre = Centre::start("round_robin", false).await;
    let Some(browser) = Browser::open(&centre.gateway, "gbm").await else {
        return;
    };
    browser.sign_in(&centre.org.key).await;
    browser.goto("/#/admin/accounts/new-gbm").await;
    browser.type_into("[name=name]", "Business Messages").await;
    browser.type_into("[name=partner_id]", "partner-1").await;
    browser.type_into("[name=client_token]", CLIENT_TOKEN).await;
    // Pasted, as one would the key file.
    browser
        .client
        .execute(
            "document.querySelector('[name=service_account]').value = arguments[0]; return true;",
            vec![Value::String(service_account.clone())],
        )
        .await
        .unwrap();
    browser.type_into("[name=brand_id]", "brand-1").await;
    browser.type_into("[name=agent_id]", "agent-1").await;
    browser.press("Create account").await;
    let id = created_account(
        &browser,
        "document.querySelector('[name=client_token]') && document.querySelector('[name=client_token]').placeholder.includes('****')",
    )
    .await;
    let html = browser.eval("document.documentElement.outerHTML").await;
    let html = html.as_str().unwrap();
    assert!(
        !html.contains(CLIENT_TOKEN),
        "the client token is in the page"
    );
    assert!(!html.contains(&key_line), "the private key is in the page");
    let shown = browser
        .eval("document.querySelector('[name=service_account]').value")
        .await;
    assert!(
        !shown.as_str().unwrap().contains(&key_line),
        "the private key is in the form: {shown}"
    );
    browser.screenshot("admin-gbm").await;

    let read = centre
        .gateway
        .call(
            "GET",
            &format!("/api/accounts/{id}"),
            Some(&centre.org.key),
            None,
        )
        .await;
    assert_eq!(read.status(), 200, "{}", read.text());
    assert!(!read.text().contains(CLIENT_TOKEN), "{}", read.text());
    assert!(!read.text().contains(&key_line), "{}", read.text());
    let read = read.json();
    assert_eq!(read["provider"], "gbm");
    assert_eq!(read["partner_id"], "partner-1");
    assert_eq!(read["brand_id"], "brand-1");
    assert_eq!(read["agent_id"], "agent-1");
    assert!(
        read["client_token"].as_str().unwrap().starts_with("****"),
        "{read}"
    );
    assert_eq!(read["service_account"]["private_key"], "****");
    assert_eq!(
        read["service_account"]["client_email"],
        "gbm-test@switchboard-test.iam.gserviceaccount.com"
    );
}

#[tokio::test]
async fn an_admin_connects_a_facebook_page_through_the_screens() {
    const APP_SECRET: &str = "app-secret-value-0000";
    const PAGE: &str = "4000000001";
    const TOKEN: &str = "EAAB-contoso-page-token";
    let graph = e2e::sim::graph(APP_SECRET, &[(PAGE, TOKEN, "Contoso Help")]);
    let gateway = Gateway::start(&[("graph_api_base", &graph.base())]).await;
    let org = gateway.new_org("Contoso").await;
    let Some(browser) = Browser::open(&gateway, "facebook").await else {
        return;
    };
    browser.sign_in(&org.key).await;
    browser.goto("/#/admin/accounts/new-facebook").await;
    browser.type_into("[name=name]", "Messenger").await;
    browser.type_into("[name=app_id]", "1234567890").await;
    browser.type_into("[name=app_secret]", APP_SECRET).await;
    browser.press("Add page").await;
    browser.type_into("[name='pages[0].name']", "Help").await;
    browser.type_into("[name='pages[0].page_id']", PAGE).await;
    // A token Graph does not know: Graph's refusal next to the token.
    browser
        .type_into("[name='pages[0].access_token']", "EAAB-guessed")
        .await;
    browser.press("Create account").await;
    browser
        .until(
            "the error next to pages[0].access_token",
            "(() => { const input = document.querySelector(\"[name='pages[0].access_token']\"); \
               const error = document.getElementById(input.id + '-error'); \
               return input.getAttribute('aria-invalid') === 'true' && error.textContent.includes('paste page'); })()",
        )
        .await;
    assert_eq!(
        browser.eval("location.hash").await,
        "#/admin/accounts/new-facebook",
        "nothing was created"
    );
    browser
        .type_into("[name='pages[0].access_token']", TOKEN)
        .await;
    browser.press("Create account").await;
    let id = created_account(
        &browser,
        "[...document.querySelectorAll('.copyable code')].length === 2",
    )
    .await;
    let read = gateway
        .call("GET", &format!("/api/accounts/{id}"), Some(&org.key), None)
        .await;
    assert_eq!(read.status(), 200, "{}", read.text());
    let page = read.json()["pages"][0].clone();
    let callback = page["callback_url"].as_str().unwrap().to_owned();
    assert!(callback.contains("/webhooks/facebook/"), "{callback}");
    // The page's callback URL and verify token, each with its copy button.
    let shown = browser
        .eval(
            "[...document.querySelectorAll('aside .copyable')].map(c => \
               c.querySelector('code').textContent + ' ' + c.querySelector('button').getAttribute('aria-label')).join('|')",
        )
        .await;
    assert_eq!(
        shown,
        format!(
            "{callback} Copy Callback URL|{} Copy Verify token",
            page["verify_token"].as_str().unwrap()
        )
    );
    assert_eq!(
        browser
            .eval("document.querySelector('aside h3').textContent")
            .await,
        "Page Help"
    );
    browser.press("Validate").await;
    browser
        .until(
            "the validation",
            "document.querySelector('.validation [data-validation=valid]')",
        )
        .await;
    assert!(
        browser
            .eval("document.querySelector('.validation').textContent")
            .await
            .as_str()
            .unwrap()
            .contains(&format!("Page {PAGE}: valid")),
        "each page's verdict is shown"
    );
    let html = browser.eval("document.documentElement.outerHTML").await;
    let html = html.as_str().unwrap();
    assert!(!html.contains(TOKEN), "the page token is in the page");
    assert!(!html.contains(APP_SECRET), "the app secret is in the page");
    browser.screenshot("admin-facebook").await;
}

/// Schedules `contacts` from `config` with a flow key, due in `delay`
/// seconds; the job's id.
async fn scheduled_job(
    gateway: &Gateway,
    flow: &str,
    config: &str,
    contacts: &[&str],
    delay: u64,
) -> String {
    let list: Vec<Value> = contacts
        .iter()
        .map(|to| json!({"tocontactid": to, "channelid": "sms", "optin": true, "CustomerName": "Kari", "CaseName": "CAS-1"}))
        .collect();
    let scheduled = gateway
        .call(
            "POST",
            &format!("/api/outbound/{config}/send"),
            Some(flow),
            Some(&json!({"ContactList": list, "delay_seconds": delay})),
        )
        .await;
    assert_eq!(scheduled.status(), 202, "{}", scheduled.text());
    scheduled.json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_flow_key_lists_outbound_jobs_and_opens_one() {
    let omni = e2e::channels::Omni::start().await;
    let (config, flow) = e2e::channels::sms_flow_of(&omni.gateway, &omni.org.key, false).await;
    let gateway = &omni.gateway;
    // One job sent (a contact without its + fails alone), one due later.
    let sent = scheduled_job(gateway, &flow, &config, &["+4790000001", "4790000002"], 0).await;
    let dispatched = gateway
        .call(
            "POST",
            "/api/outbound/dispatch",
            Some(e2e::api::DISPATCH_TOKEN),
            None,
        )
        .await;
    assert_eq!(dispatched.status(), 200, "{}", dispatched.text());
    let later = scheduled_job(gateway, &flow, &config, &["+4790000003"], 3600).await;
    let Some(browser) = Browser::open(gateway, "jobs").await else {
        return;
    };
    browser.sign_in(&flow).await;
    browser.goto("/#/admin/jobs").await;
    browser
        .until(
            "the jobs",
            "document.querySelectorAll('main tbody tr').length === 2",
        )
        .await;
    let rows = "[...document.querySelectorAll('main tbody tr')].map(r => \
        [...r.cells].slice(0, 1).concat([...r.cells].slice(3)).map(c => c.textContent).join(' / '))";
    assert_eq!(
        browser.eval(rows).await,
        json!([
            format!("{later} / scheduled / Sent 0 · skipped 0 · failed 0 · pending 1 (of 1)"),
            format!("{sent} / done / Sent 1 · skipped 0 · failed 1 · pending 0 (of 2)"),
        ]),
        "newest first, each with its state and progress"
    );
    assert_eq!(
        browser
            .eval("document.querySelector('main').innerText.includes('null')")
            .await,
        false,
        "nothing missing is shown as null"
    );
    assert_eq!(browser.unnamed_controls().await, Vec::<String>::new());
    browser.screenshot("admin-jobs").await;

    browser
        .click(&format!("a[href='#/admin/jobs/{sent}']"))
        .await;
    browser
        .until("the job", "document.querySelector('main .job-summary')")
        .await;
    assert_eq!(
        browser.eval("document.activeElement.textContent").await,
        format!("Job {sent}"),
        "the job's heading has the focus"
    );
    assert_eq!(
        browser
            .eval("document.querySelector('main [data-state]').textContent")
            .await,
        "done"
    );
    let results = browser
        .eval("[...document.querySelectorAll('main tbody tr')].map(r => [...r.cells].map(c => c.textContent).join(' / '))")
        .await;
    let results: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results[0].starts_with("1 / +4790000001 / sent"),
        "{results:?}"
    );
    assert!(
        results[1].starts_with("2 / 4790000002 / failed / ") && results[1].contains("E.164"),
        "the reason is shown: {results:?}"
    );

    // More than a page: the older ones come on request, and the focus goes
    // to the first of them.
    for _ in 0..49 {
        scheduled_job(gateway, &flow, &config, &["+4790000004"], 3600).await;
    }
    browser.goto("/#/admin/jobs").await;
    browser
        .until(
            "a page of jobs",
            "document.querySelectorAll('main tbody tr').length === 50",
        )
        .await;
    browser.press("Show older jobs").await;
    browser
        .until(
            "the older jobs",
            "document.querySelectorAll('main tbody tr').length === 51",
        )
        .await;
    assert_eq!(
        browser.eval("document.activeElement.textContent").await,
        sent.as_str(),
        "the first older job's link has the focus"
    );
    assert_eq!(
        browser.eval("[...document.querySelectorAll('main button')].some(b => b.textContent === 'Show older jobs')").await,
        false
    );
}

/// The names in the contacts table.
const CONTACT_ROWS: &str =
    "[...document.querySelectorAll('main tbody tr')].map(r => r.cells[0].textContent)";

/// Searches the contacts screen for `typed`, from the keyboard (Enter in the
/// search box), and waits for the answer.
async fn search_contacts(browser: &Browser, typed: &str) {
    browser
        .type_into("main form[role=search] input[name=q]", typed)
        .await;
    browser.keys(&[Key::Enter]).await;
    browser
        .until(
            "the search's answer",
            &format!(
                "location.hash === '#/contacts?q=' + encodeURIComponent({typed:?}.trim()) && ({SCREEN_LOADED})"
            ),
        )
        .await;
}

#[tokio::test]
async fn contacts_are_found_by_name_and_by_number_and_open_their_timeline() {
    let omni = e2e::channels::Omni::start().await;
    let gateway = &omni.gateway;
    let (config, flow) = e2e::channels::sms_flow_of(gateway, &omni.org.key, true).await;
    // A message to Kari makes her contact, with it on her timeline.
    let sent = gateway
        .call(
            "POST",
            &format!("/api/outbound/{config}/send"),
            Some(&flow),
            Some(&json!({"ContactList": [{"tocontactid": "+4790000001", "channelid": "sms", "optin": true, "CustomerName": "Kari Nordmann", "CaseName": "CAS-7", "entityrelationshipname": "incident"}]})),
        )
        .await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
    assert_eq!(
        sent.json()["results"][0]["status"],
        "sent",
        "{}",
        sent.text()
    );
    for name in ["Ola Nordmann", "Per Hansen"] {
        gateway
            .create(&omni.org.key, "/api/contacts", json!({"name": name}))
            .await;
    }
    let Some(browser) = Browser::open(gateway, "contacts").await else {
        return;
    };
    browser.sign_in(&omni.org.key).await;
    browser.goto("/#/contacts").await;
    browser.until("the contacts", SCREEN_LOADED).await;
    // Kari's contact, made by the send, is listed with the others.
    assert_eq!(
        browser.eval(CONTACT_ROWS).await,
        json!(["Kari Nordmann", "Ola Nordmann", "Per Hansen"])
    );
    assert_eq!(browser.unnamed_controls().await, Vec::<String>::new());

    // Part of a name, any case.
    search_contacts(&browser, "NORDM").await;
    assert_eq!(
        browser.eval(CONTACT_ROWS).await,
        json!(["Kari Nordmann", "Ola Nordmann"])
    );
    search_contacts(&browser, "oLA").await;
    assert_eq!(browser.eval(CONTACT_ROWS).await, json!(["Ola Nordmann"]));
    assert_eq!(
        browser
            .eval("document.querySelector('main input[name=q]').value")
            .await,
        "oLA",
        "the search box keeps what was searched"
    );
    browser.click("main tbody a").await;
    browser
        .until(
            "Ola's timeline",
            "document.querySelector('main h1')?.textContent === 'Ola Nordmann'",
        )
        .await;
    browser.until("the timeline", SCREEN_LOADED).await;
    assert!(browser
        .eval("document.querySelector('main').innerText")
        .await
        .as_str()
        .unwrap()
        .contains("Nothing on the timeline."));

    // A phone number, typed with spaces: Kari, and her message.
    browser.goto("/#/contacts").await;
    browser.until("the contacts", SCREEN_LOADED).await;
    search_contacts(&browser, "+47 900 00 001").await;
    assert_eq!(browser.eval(CONTACT_ROWS).await, json!(["Kari Nordmann"]));
    browser.screenshot("contacts-search").await;
    browser.click("main tbody a").await;
    browser
        .until(
            "Kari's timeline",
            &format!("document.querySelector('main h1')?.textContent === 'Kari Nordmann' && ({SCREEN_LOADED})"),
        )
        .await;
    let text = browser
        .eval("document.querySelector('main').innerText")
        .await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("Hi Kari Nordmann, case CAS-7 was updated."),
        "{text}"
    );

    // Nothing found, and a search the API refuses, shown next to the box.
    browser.goto("/#/contacts").await;
    browser.until("the contacts", SCREEN_LOADED).await;
    search_contacts(&browser, "Nobody").await;
    assert_eq!(
        browser
            .eval("document.querySelector('main .empty').textContent")
            .await,
        "No contacts match “Nobody”."
    );
    search_contacts(&browser, &"x".repeat(101)).await;
    let refused = browser
        .eval("document.querySelector('main [data-field=q] .field-error').textContent")
        .await;
    assert!(
        refused.as_str().unwrap().contains("100 characters"),
        "{refused}"
    );
    assert_eq!(
        browser.eval("document.activeElement.name").await,
        "q",
        "the search box with the error has the focus"
    );
    // An empty search is the whole list again.
    browser.type_into("main input[name=q]", " ").await;
    browser.keys(&[Key::Enter]).await;
    browser
        .until(
            "the whole list",
            &format!("location.hash === '#/contacts' && ({SCREEN_LOADED}) && document.querySelectorAll('main tbody tr').length === 3"),
        )
        .await;
}

#[tokio::test]
async fn deleting_a_queue_hands_the_focus_to_the_next_row_else_the_new_button() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    for name in ["Alpha", "Bravo", "Charlie"] {
        gateway
            .create(&org.key, "/api/queues", json!({"name": name}))
            .await;
    }
    let Some(browser) = Browser::open(&gateway, "delete-focus").await else {
        return;
    };
    browser.sign_in(&org.key).await;
    browser.goto("/#/admin/queues").await;
    browser.until("the queues", SCREEN_LOADED).await;
    let focused =
        "document.activeElement.getAttribute('aria-label') || document.activeElement.textContent";
    for (delete, left, focus) in [
        ("Bravo", 2, "Delete Charlie"),
        ("Charlie", 1, "Delete Alpha"),
        ("Alpha", 0, "New queue"),
    ] {
        browser
            .click(&format!("button[aria-label='Delete {delete}']"))
            .await;
        browser.client.accept_alert().await.unwrap();
        browser
            .until(
                &format!("{delete} deleted"),
                &format!(
                    "document.querySelectorAll('main tbody tr').length === {left} \
                     && document.querySelector('#announcer').textContent === 'Deleted {delete}.'"
                ),
            )
            .await;
        assert_eq!(
            browser.eval(focused).await,
            focus,
            "after deleting {delete}"
        );
    }
}

#[tokio::test]
async fn an_empty_row_stays_with_the_apis_error_next_to_it() {
    const SUPPORT: &str = "+14155550100";
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let Some(browser) = Browser::open(&gateway, "empty-row").await else {
        return;
    };
    browser.sign_in(&org.key).await;
    browser.goto("/#/admin/accounts/new-twilio").await;
    browser.type_into("[name=name]", "WhatsApp EU").await;
    browser.type_into("[name=account_sid]", ACCOUNT_SID).await;
    browser.type_into("[name=auth_token]", AUTH_TOKEN).await;
    // Two rows; the first left empty. Adding the second repaints the list.
    browser.press("Add number").await;
    browser.press("Add number").await;
    browser
        .type_into("[name='numbers[1].name']", "Support")
        .await;
    browser
        .type_into("[name='numbers[1].number']", SUPPORT)
        .await;
    browser.press("Create account").await;
    browser
        .until(
            "the error next to the empty row's name",
            "(() => { const input = document.querySelector(\"[name='numbers[0].name']\"); \
               const error = document.getElementById(input.id + '-error'); \
               return input.getAttribute('aria-invalid') === 'true' && error.textContent.trim() !== ''; })()",
        )
        .await;
    let rows = "[...document.querySelectorAll(\"[data-rows=numbers] > .row-item\")].map(row => \
        [...row.querySelectorAll('input')].map(i => i.value).join(',')).join('|')";
    assert_eq!(browser.eval(rows).await, format!(",|Support,{SUPPORT}"));
    assert_eq!(
        browser.eval("location.hash").await,
        "#/admin/accounts/new-twilio",
        "nothing was created"
    );
    // A repaint (another row added) keeps the empty row too.
    browser.press("Add number").await;
    assert_eq!(browser.eval(rows).await, format!(",|Support,{SUPPORT}|,"));
    // Filled in, the first and the last go too.
    browser.type_into("[name='numbers[0].name']", "Sales").await;
    browser
        .type_into("[name='numbers[0].number']", "+14155550101")
        .await;
    browser.click("button[aria-label='Remove number 3']").await;
    browser.press("Create account").await;
    let id = created_account(
        &browser,
        "document.querySelectorAll(\"[data-rows=numbers] > .row-item\").length === 2",
    )
    .await;
    let read = gateway
        .call("GET", &format!("/api/accounts/{id}"), Some(&org.key), None)
        .await;
    assert_eq!(
        read.json()["numbers"],
        json!([
            {"name": "Sales", "number": "+14155550101"},
            {"name": "Support", "number": SUPPORT},
        ])
    );
}

#[tokio::test]
async fn an_agent_parks_resumes_and_transfers_a_conversation() {
    let centre = Centre::start("round_robin", false).await;
    let agent = centre.agent("Ada Lovelace", 3, &["general"]).await;
    centre
        .customer_says("SM0001", CUSTOMER, "Where is my order?")
        .await;
    let Some(browser) = Browser::open(&centre.gateway, "actions").await else {
        return;
    };
    browser.sign_in(&agent.key).await;
    browser.click(".conv").await;
    browser
        .until(
            "the active conversation",
            "document.querySelector('[data-state=active]')",
        )
        .await;
    browser.press("Wait").await;
    browser
        .until(
            "the parked conversation",
            "document.querySelector('[data-state=waiting]')",
        )
        .await;
    browser.press("Resume").await;
    browser
        .until(
            "the resumed conversation",
            "document.querySelector('[data-state=active]')",
        )
        .await;
    let billing = centre.queue("billing");
    browser
        .css("select[name=transfer]")
        .await
        .select_by_value(&format!("queue:{billing}"))
        .await
        .unwrap();
    browser.press("Transfer").await;
    browser
        .until(
            "the list without it",
            "location.hash === '#/inbox' && document.querySelector('.inbox-list h2') && !document.querySelector('.conv')",
        )
        .await;
    let moved = centre.conversations("state=open").await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["queue_id"], billing.as_str());
}

#[tokio::test]
async fn an_admin_makes_a_key_shown_once_and_revokes_it() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso Support").await;
    let Some(browser) = Browser::open(&gateway, "keys").await else {
        return;
    };
    browser.sign_in(&org.key).await;
    browser.goto("/#/admin/keys").await;
    browser.type_into("[name=name]", "Order flow").await;
    browser
        .css("[name=role]")
        .await
        .select_by_value("flow")
        .await
        .unwrap();
    browser.press("Create key").await;
    browser
        .until("the new key", "document.querySelector('.new-key')")
        .await;
    let key = browser
        .eval("document.querySelector('.new-key').textContent")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("sb_"), "{key}");
    browser.press("Done").await;
    browser
        .until(
            "the key, masked, in the table",
            &format!(
                "!document.querySelector('.new-key') && [...document.querySelectorAll('td code')].some(c => c.textContent === '****{}')",
                &key[key.len() - 4..]
            ),
        )
        .await;

    // The flow key sees the outbound screens only.
    browser.press("Sign out").await;
    browser.sign_in(&key).await;
    browser
        .until(
            "the flow's screens",
            "[...document.querySelectorAll('#nav a')].map(a => a.textContent).join('|') === 'Outbound|Jobs' \
             && document.querySelector('h1').textContent === 'Outbound configurations'",
        )
        .await;
    browser.press("Sign out").await;

    browser.sign_in(&org.key).await;
    browser.goto("/#/admin/keys").await;
    browser.click("tbody tr:nth-child(2) button").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until(
            "one key left",
            "document.querySelectorAll('tbody tr').length === 1",
        )
        .await;
    assert_eq!(
        gateway.status("GET", "/api/outbound-configs", &key).await,
        401
    );
}

#[tokio::test]
async fn the_console_is_usable_from_the_keyboard() {
    let centre = Centre::start("round_robin", false).await;
    let agent = centre.agent("Ada Lovelace", 3, &["general"]).await;
    centre
        .gateway
        .create(
            &centre.org.key,
            "/api/templates",
            json!({
                "name": "Follow-up", "channel_types": ["whatsapp"], "default_locale": "en-US",
                "versions": {"en-US": "Hello {{CustomerName}}.", "nb-NO": "Hei {{CustomerName}}."},
            }),
        )
        .await;
    let Some(browser) = Browser::open(&centre.gateway, "keyboard").await else {
        return;
    };
    browser.sign_in(&agent.key).await;

    // From the top of the page, the first Tab reaches the skip link, shown
    // on screen; activating it puts the focus on the screen itself.
    // (A reload: going to a URL that differs only in its hash would keep
    // the page, and where its focus was.)
    browser.goto("/#/inbox").await;
    browser.client.refresh().await.unwrap();
    browser
        .until("the inbox", "document.querySelector('.inbox-list h1')")
        .await;
    browser.keys(&[Key::Tab]).await;
    assert_eq!(
        browser
            .eval("document.activeElement.textContent + '|' + (document.activeElement.getBoundingClientRect().top >= 0)")
            .await,
        "Skip to content|true",
        "the first Tab reaches the visible skip link"
    );
    browser.keys(&[Key::Enter]).await;
    assert_eq!(
        browser
            .eval("document.activeElement.id + '|' + location.hash")
            .await,
        "main|#/inbox",
        "the skip link moves the focus to main and leaves the route alone"
    );

    // A customer's message is announced in the polite live region.
    centre
        .customer_says("SM0001", CUSTOMER, "Where is my order?")
        .await;
    browser
        .until(
            "the arrival announced",
            "document.querySelector('#announcer[aria-live=polite]').textContent === 'New message from Jane Doe.'",
        )
        .await;

    // The agent's inbox with the conversation open: every control named.
    let mut unnamed = Vec::new();
    browser.click(".conv").await;
    browser
        .until(
            "the reply box",
            "document.querySelector('.composer textarea') && document.querySelector('.conv-head h1')",
        )
        .await;
    for control in browser.unnamed_controls().await {
        unnamed.push(format!("agent #/inbox/…: {control}"));
    }
    browser.press("Sign out").await;

    // Each admin screen (its forms opened, its lists given a row).
    browser.sign_in(&centre.org.key).await;
    let id = centre.conversations("state=active").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let screens: Vec<(String, &[&str])> = vec![
        ("/#/inbox".into(), &[]),
        (format!("/#/inbox/{id}"), &[]),
        ("/#/admin/accounts".into(), &[]),
        (
            "/#/admin/accounts/new-twilio".into(),
            &["Add number", "Add SMS number", "Add shared key"],
        ),
        ("/#/admin/accounts/new-telesign".into(), &["Add number"]),
        ("/#/admin/accounts/new-facebook".into(), &["Add page"]),
        ("/#/admin/accounts/new-gbm".into(), &[]),
        ("/#/admin/queues".into(), &["New queue"]),
        ("/#/admin/agents".into(), &["New agent"]),
        (
            "/#/admin/workstreams".into(),
            &["New workstream", "Add channel", "Add rule"],
        ),
        ("/#/admin/templates".into(), &[]),
        ("/#/admin/templates/new".into(), &[]),
        ("/#/admin/outbound-configs".into(), &["New configuration"]),
        ("/#/admin/keys".into(), &[]),
        ("/#/admin/jobs".into(), &[]),
        ("/#/contacts".into(), &["New contact"]),
    ];
    for (path, buttons) in &screens {
        browser.goto(path).await;
        browser.until(path, SCREEN_LOADED).await;
        for button in buttons.iter() {
            browser.press(button).await;
        }
        if path.starts_with("/#/inbox/") {
            browser
                .until(
                    "the open conversation",
                    "document.querySelector('.conv-head h1')",
                )
                .await;
        }
        for control in browser.unnamed_controls().await {
            unnamed.push(format!("{path}: {control}"));
        }
    }
    // An existing account and an existing template (with its preview).
    for (list, link, ready) in [
        (
            "/#/admin/accounts",
            "a[href^='#/admin/accounts/']:not([href*='new-'])",
            "document.querySelector('main .split aside') && document.querySelector('[name=account_sid]')",
        ),
        (
            "/#/admin/templates",
            "td a[href^='#/admin/templates/']",
            "document.querySelector('main .split [role=tablist]') && document.querySelector('[name=CustomerName]')",
        ),
    ] {
        browser.goto(list).await;
        browser.until(list, SCREEN_LOADED).await;
        browser.click(link).await;
        browser.until(link, ready).await;
        for control in browser.unnamed_controls().await {
            unnamed.push(format!("{link}: {control}"));
        }
    }
    // (The check itself finds a control without a name.)
    browser
        .eval("document.querySelector('main').appendChild(Object.assign(document.createElement('input'), {id: 'probe'})) && true")
        .await;
    assert_eq!(
        browser.unnamed_controls().await,
        ["input[name=]#probe \"\""],
        "the check finds an unlabelled input"
    );
    browser
        .eval("document.getElementById('probe').remove() || true")
        .await;
    assert!(
        unnamed.is_empty(),
        "form controls without an accessible name:\n{}",
        unnamed.join("\n")
    );

    // The template's locales are tabs: the arrows, Home and End move the
    // focus and the selection together; one tab is in the Tab order.
    browser
        .until(
            "the locale tabs",
            "document.querySelectorAll('[role=tablist] [role=tab]').length === 2",
        )
        .await;
    browser.type_into("#new-locale", "de-DE").await;
    browser.keys(&[Key::Enter]).await;
    browser
        .until(
            "the third tab, selected and focused",
            "document.querySelectorAll('[role=tab]').length === 3 \
             && document.activeElement.getAttribute('role') === 'tab' \
             && document.activeElement.dataset.locale === 'de-DE'",
        )
        .await;
    browser.click("[role=tab][data-locale='en-US']").await;
    let state = "(() => { \
        const tabs = [...document.querySelectorAll('[role=tablist] [role=tab]')]; \
        const selected = tabs.filter(t => t.getAttribute('aria-selected') === 'true'); \
        const panel = document.getElementById(selected[0].getAttribute('aria-controls')); \
        const shown = [...document.querySelectorAll('[role=tabpanel]')].filter(p => !p.hidden); \
        return [document.activeElement.dataset.locale, \
                selected.map(t => t.dataset.locale).join(','), \
                tabs.filter(t => t.tabIndex === 0).map(t => t.dataset.locale).join(','), \
                String(shown.length === 1 && shown[0] === panel && panel.getAttribute('aria-labelledby') === selected[0].id)].join('|'); \
    })()";
    assert_eq!(browser.eval(state).await, "en-US|en-US|en-US|true");
    for (key, locale) in [
        (Key::Right, "nb-NO"),
        (Key::End, "de-DE"),
        (Key::Home, "en-US"),
        (Key::Left, "de-DE"),
        (Key::Right, "en-US"),
    ] {
        browser.keys(&[key]).await;
        assert_eq!(
            browser.eval(state).await,
            format!("{locale}|{locale}|{locale}|true"),
            "after {key:?}"
        );
    }
    // What was typed in a panel survives moving between the tabs.
    assert_eq!(
        browser
            .eval("document.querySelector(\"[name='versions.nb-NO.text']\").value")
            .await,
        "Hei {{CustomerName}}."
    );

    // Removing a locale hands the focus to the tab left selected; a save
    // is announced.
    browser.keys(&[Key::End]).await;
    browser.press("Remove de-DE").await;
    assert_eq!(browser.eval(state).await, "en-US|en-US|en-US|true");
    assert_eq!(
        browser
            .eval(
                "[...document.querySelectorAll('[role=tab]')].map(t => t.dataset.locale).join(',')"
            )
            .await,
        "en-US,nb-NO"
    );
    browser.press("Save").await;
    browser
        .until(
            "the save announced",
            "document.querySelector('#announcer').textContent === 'Saved the template.'",
        )
        .await;

    // A screen change puts the focus on the new screen's main heading.
    let heading_focused = "document.activeElement.matches('main h1, main h2') \
        && document.activeElement.tabIndex === -1";
    browser.goto("/#/admin/accounts/new-twilio").await;
    browser
        .until("the account heading focused", heading_focused)
        .await;

    // Removing a row hands the focus to the next row's remove button, else
    // the previous one's, else the list's add button: never to <body>.
    for n in 0..3 {
        browser.press("Add number").await;
        browser
            .type_into(&format!("[name='numbers[{n}].name']"), &format!("Line {n}"))
            .await;
    }
    assert_eq!(
        browser
            .eval("document.querySelectorAll(\"button[aria-label^='Remove number ']\").length")
            .await,
        3
    );
    let focused =
        "document.activeElement.getAttribute('aria-label') || document.activeElement.textContent";
    browser.click("button[aria-label='Remove number 2']").await;
    assert_eq!(
        browser.eval(focused).await,
        "Remove number 2",
        "the next row's"
    );
    browser.click("button[aria-label='Remove number 2']").await;
    assert_eq!(
        browser.eval(focused).await,
        "Remove number 1",
        "the previous row's"
    );
    browser.click("button[aria-label='Remove number 1']").await;
    assert_eq!(
        browser.eval(focused).await,
        "Add number",
        "the list's add button"
    );
    assert_eq!(
        browser
            .eval("document.activeElement.closest('fieldset.rows') !== null")
            .await,
        true
    );

    browser.goto("/#/admin/queues").await;
    browser
        .until("the queues heading focused", heading_focused)
        .await;
    assert_eq!(
        browser.eval("document.activeElement.textContent").await,
        "Queues"
    );
}
