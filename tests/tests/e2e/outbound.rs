//! The outbound API end to end through the real `outbound.wasm` (issue 6):
//! contact lists sent in 100-contact batches through the TeleSign and
//! Twilio simulators, localized rendering, per-contact results, activities
//! on the timeline and their delivery status, the hour's budget (also
//! across two dev hosts on one Redis), idempotency keys, scheduled jobs
//! dispatched exactly once, and replies threading into conversations.

use e2e::api::{Gateway, DISPATCH_TOKEN, OPERATOR_TOKEN};
use e2e::channels::{
    delivery_report, mo_sms, posts, sms_flow_of, Omni, API_KEY, CUSTOMER_ID, SMS_NUMBER,
};
use e2e::outbound::{
    activity, dispatch, job, read, send, Activity, Contact, ContactResult, DispatchAnswer,
    JobProgress, JobState, JobView, SendAnswer, SendRequest, Status, Summary,
};
use e2e::sim;
use e2e::sim::Recorded;
use e2e::whatsapp::{field, status_params, Centre, BUSINESS_NUMBER};
use e2e::{redis_url, Backend};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use switchboard_core::conversations::wire::{Close, Link};
use switchboard_core::store::Page;

const CONTENT_SID: &str = "HX0123456789abcdef0123456789abcdef";

/// An SMS template in English (default), Norwegian and Swedish, and an
/// outbound configuration using it; returns (configuration id, flow key).
async fn sms_flow(omni: &Omni, show_on_timeline: bool) -> (String, String) {
    sms_flow_of(&omni.gateway, &omni.org.key, show_on_timeline).await
}

fn number(n: usize) -> String {
    format!("+4790{n:06}")
}

/// A valid SMS contact, as the seed's flow builds it.
fn contact(n: usize, locale: Option<&str>) -> Contact {
    Contact {
        tocontactid: number(n),
        channelid: "sms".into(),
        optin: true,
        locale: locale.map(str::to_owned),
        contextitems: Some(serde_json::Map::from_iter([(
            "Priority".to_owned(),
            json!("high"),
        )])),
        entityrelationshipname: Some("incident".into()),
        msdyn_ocoutboundconfigurationid: None,
        customer_name: format!("Kari {n}"),
        case_name: format!("CAS-{n}"),
    }
}

fn sms_sends(omni: &Omni) -> Vec<Recorded> {
    posts(&omni.telesign, "/v1/messaging")
}

/// The conversation with the customer at `address`.
async fn conversation_with(omni: &Omni, address: &str) -> Value {
    let listed = omni.conversations("").await;
    let found = listed
        .iter()
        .find(|c| c["customer_address"] == address)
        .unwrap_or_else(|| panic!("no conversation with {address}: {listed:?}"));
    omni.conversation(found["id"].as_str().unwrap()).await
}

fn list(contacts: Vec<Contact>) -> SendRequest {
    SendRequest {
        contact_list: contacts,
        ..SendRequest::default()
    }
}

/// A contact as JSON, for lists that mix in malformed ones.
fn raw(contact: Contact) -> Value {
    serde_json::to_value(contact).unwrap()
}

/// Every contact's status, reason code and reason field.
fn outcomes(answer: &SendAnswer) -> Vec<(Status, &str, &str)> {
    answer
        .results
        .iter()
        .map(|result| {
            let reason = result.reason.as_ref();
            (
                result.status,
                reason.map_or("", |r| r.code.as_str()),
                reason.and_then(|r| r.field.as_deref()).unwrap_or(""),
            )
        })
        .collect()
}

fn summary(sent: usize, skipped: usize, failed: usize, not_attempted: usize) -> Summary {
    Summary {
        sent,
        skipped,
        failed,
        not_attempted,
        unknown: 0,
    }
}

#[tokio::test]
async fn a_contact_list_goes_out_in_batches_with_a_result_per_contact() {
    let omni = Omni::start().await;
    let (config, flow) = sms_flow(&omni, true).await;

    // 250 contacts are 3 batches and 250 signed TeleSign requests, each in
    // the contact's language where the template has it.
    let locales = [Some("nb-NO"), Some("sv-SE"), Some("de-DE"), None];
    let contacts: Vec<Contact> = (0..250).map(|n| contact(n, locales[n % 4])).collect();
    let sent = send(&omni.gateway, &flow, &config, &list(contacts), None).await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
    let answer: SendAnswer = read(&sent);
    assert_eq!((answer.contacts, answer.batches), (250, 3));
    assert_eq!(answer.summary, summary(250, 0, 0, 0));
    // The contacts the send made are listed, each once.
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = omni
            .get(&omni.org.key, &format!("/api/contacts?limit=200{cursor}"))
            .await;
        listed.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed.len(), 250);
    let requests = sms_sends(&omni);
    assert_eq!(requests.len(), 250);
    let expected_locale = ["nb", "sv-SE", "en", "en"];
    let results = &answer.results;
    let mut reference_ids = HashSet::new();
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result.index, n);
        assert_eq!(result.status, Status::Sent);
        assert_eq!(
            result.locale.as_deref(),
            Some(expected_locale[n % 4]),
            "contact {n}"
        );
        reference_ids.insert(result.provider_message_id.clone().unwrap());
        let request = requests
            .iter()
            .find(|r| r.form_value("phone_number").as_deref() == Some(&number(n)[1..]))
            .unwrap_or_else(|| panic!("no send to contact {n}"));
        let text = request.form_value("message").unwrap();
        let greeting = match n % 4 {
            0 => format!("Hei Kari {n}, saken CAS-{n} er oppdatert."),
            1 => format!("Hej Kari {n}, ärendet CAS-{n} har uppdaterats."),
            _ => format!("Hi Kari {n}, case CAS-{n} was updated."),
        };
        assert_eq!(text, greeting);
        assert_eq!(request.form_value("sender_id").as_deref(), Some(SMS_NUMBER));
        assert_eq!(request.form_value("message_type").as_deref(), Some("ARN"));
        assert!(request.header("authorization").unwrap().starts_with("TSA "));
    }
    assert_eq!(reference_ids.len(), 250, "one provider message per contact");

    // Bad contacts fail alone, opted-out ones are skipped, the rest go.
    let stop = omni
        .telesign_callback(&mo_sms(
            "AAAA0000000000000000000000000001",
            "4790000900",
            "STOP",
        ))
        .await;
    assert_eq!(stop.status(), 200, "{}", stop.text());
    // Deliberately malformed contacts: raw JSON beside typed ones.
    let mut mixed = vec![
        raw(contact(901, Some("nb-NO"))),
        json!({"tocontactid": "4790000902", "channelid": "sms", "optin": true, "entityrelationshipname": "incident", "CustomerName": "Ola", "CaseName": "CAS-2"}),
        json!({"tocontactid": number(903), "channelid": "sms", "optin": false, "entityrelationshipname": "incident", "CustomerName": "Per", "CaseName": "CAS-3"}),
        raw(contact(900, None)),
        json!({"tocontactid": number(904), "channelid": "sms", "optin": true, "entityrelationshipname": "incident", "CustomerName": "Liv"}),
        json!({"tocontactid": number(905), "channelid": "whatsapp", "optin": true, "entityrelationshipname": "incident", "CustomerName": "Nils", "CaseName": "CAS-5"}),
        json!({"tocontactid": number(906), "channelid": "sms", "optin": true, "CustomerName": "Siv", "CaseName": "CAS-6"}),
        json!("+4790000907"),
    ];
    mixed.push(raw(contact(908, Some("sv-SE"))));
    let before = sms_sends(&omni).len();
    let body = json!({ "ContactList": mixed });
    let sent = send(&omni.gateway, &flow, &config, &body, None).await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
    let answer: SendAnswer = read(&sent);
    assert_eq!(
        outcomes(&answer),
        vec![
            (Status::Sent, "", ""),
            (
                Status::Failed,
                "invalid_format",
                "ContactList[1].tocontactid"
            ),
            (Status::Skipped, "opted_out", "ContactList[2].optin"),
            (Status::Skipped, "opted_out", ""),
            (Status::Failed, "required", "ContactList[4].CaseName"),
            (
                Status::Failed,
                "channel_mismatch",
                "ContactList[5].channelid"
            ),
            (
                Status::Failed,
                "required",
                "ContactList[6].entityrelationshipname"
            ),
            (Status::Failed, "wrong_type", "ContactList[7]"),
            (Status::Sent, "", ""),
        ]
    );
    assert_eq!(answer.summary, summary(2, 2, 5, 0));
    let new_sends: Vec<String> = sms_sends(&omni)[before..]
        .iter()
        .map(|r| r.form_value("phone_number").unwrap())
        .collect();
    assert_eq!(new_sends.len(), 2);
    assert!(
        new_sends.contains(&"4790000901".to_owned())
            && new_sends.contains(&"4790000908".to_owned())
    );

    // Each send is an activity on the contact's timeline, and TeleSign's
    // delivery report moves it forward.
    let first = &results[0];
    let contact_id = first.contact_id.as_deref().unwrap();
    let timeline = omni
        .get(
            &omni.org.key,
            &format!("/api/contacts/{contact_id}/timeline"),
        )
        .await;
    let items: Vec<Activity> = serde_json::from_value(timeline["items"].clone()).unwrap();
    assert_eq!(items.len(), 1, "{timeline}");
    let shown = &items[0];
    assert_eq!(shown.kind, "outbound_message");
    assert_eq!(Some(shown.id.as_str()), first.activity_id.as_deref());
    assert_eq!(shown.entityrelationshipname.as_deref(), Some("incident"));
    assert_eq!(shown.configuration_id, config);
    assert_eq!(shown.text, "Hei Kari 0, saken CAS-0 er oppdatert.");
    assert_eq!(shown.to, number(0));
    let reference = first.provider_message_id.as_deref().unwrap();
    let report = omni
        .telesign_callback(&delivery_report(reference, 200, "Delivered to handset"))
        .await;
    assert_eq!(report.status(), 200, "{}", report.text());
    let activity_id = first.activity_id.as_deref().unwrap();
    let activity = activity(&omni.gateway, &flow, activity_id).await;
    assert_eq!(activity.status, "delivered");

    // The customer answers: the conversation shows the outbound message
    // first, and is routed like any message (keyword "refund" → billing).
    let reply = omni
        .telesign_callback(&mo_sms(
            "AAAA0000000000000000000000000002",
            &number(0)[1..],
            "Can I get a refund?",
        ))
        .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let conversation = conversation_with(&omni, &number(0)).await;
    assert_eq!(conversation["queue_id"], omni.queue("billing").as_str());
    let messages = conversation["messages"].as_array().unwrap();
    let shown: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m["author"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("automation", "Hei Kari 0, saken CAS-0 er oppdatert."),
            ("customer", "Can I get a refund?"),
        ]
    );
    assert_eq!(messages[0]["status"], "delivered");
    assert_eq!(messages[0]["activity_id"].as_str(), Some(activity_id));
    // A second reply does not show the outbound message again.
    let again = omni
        .telesign_callback(&mo_sms(
            "AAAA0000000000000000000000000003",
            &number(0)[1..],
            "Hello?",
        ))
        .await;
    assert_eq!(again.status(), 200);
    let conversation = conversation_with(&omni, &number(0)).await;
    assert_eq!(conversation["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn whatsapp_goes_out_as_the_approved_template_with_content_variables() {
    let centre = Centre::start("round_robin", true).await;
    let key = &centre.org.key;
    let template = centre
        .gateway
        .create(
            key,
            "/api/templates",
            json!({
                "name": "Order shipped", "channel_types": ["whatsapp"], "default_locale": "en",
                "versions": {
                    "en": {"text": "Hi {{CustomerName}}, order {{OrderId}} for {{CaseName}} shipped.", "approved": true, "content_sid": CONTENT_SID},
                    "nb": "Hei {{CustomerName}}, ordre {{OrderId}} er sendt.",
                },
            }),
        )
        .await;
    let config = centre
        .gateway
        .create(
            key,
            "/api/outbound-configs",
            json!({
                "name": "Shipping", "show_on_timeline": false, "channel_type": "whatsapp",
                "channel": BUSINESS_NUMBER, "template_id": template["id"],
            }),
        )
        .await;
    let config = config["id"].as_str().unwrap();
    let contacts = vec![
        Contact {
            tocontactid: "+4798765432".into(),
            channelid: "WhatsApp".into(),
            optin: true,
            locale: Some("nb-NO".into()),
            contextitems: Some(serde_json::Map::from_iter([(
                "OrderId".to_owned(),
                json!("A-17"),
            )])),
            msdyn_ocoutboundconfigurationid: Some(config.to_owned()),
            customer_name: "Kari".into(),
            case_name: "CAS-9".into(),
            ..Contact::default()
        },
        Contact {
            tocontactid: "+4798765433".into(),
            channelid: "whatsapp".into(),
            optin: true,
            customer_name: "Ola".into(),
            case_name: "CAS-10".into(),
            ..Contact::default()
        },
    ];
    let sent = send(&centre.gateway, key, config, &list(contacts), None).await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
    let answer: SendAnswer = read(&sent);
    // Norwegian is not approved: the approved English text goes.
    assert_eq!(answer.results[0].status, Status::Sent);
    assert_eq!(answer.results[0].locale.as_deref(), Some("en"));
    // Without its context item, the second contact fails alone.
    assert_eq!(
        outcomes(&answer)[1],
        (
            Status::Failed,
            "missing_placeholder",
            "ContactList[1].contextitems"
        )
    );
    let sends = centre.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(field(&sends[0], "ContentSid").as_deref(), Some(CONTENT_SID));
    let variables: Value =
        serde_json::from_str(&field(&sends[0], "ContentVariables").unwrap()).unwrap();
    assert_eq!(variables, json!({"1": "Kari", "2": "A-17", "3": "CAS-9"}));
    assert_eq!(
        field(&sends[0], "To").as_deref(),
        Some("whatsapp:+4798765432")
    );
    assert_eq!(
        field(&sends[0], "From").unwrap(),
        format!("whatsapp:{BUSINESS_NUMBER}")
    );
    assert_eq!(field(&sends[0], "Body"), None);
    assert!(field(&sends[0], "StatusCallback")
        .unwrap()
        .ends_with(&centre.webhook_path()));

    // Twilio's status callbacks update the activity, forward only.
    let sid = answer.results[0].provider_message_id.as_deref().unwrap();
    let activity_id = answer.results[0].activity_id.as_deref().unwrap();
    for (status, expected) in [
        ("delivered", "delivered"),
        ("sent", "delivered"),
        ("read", "read"),
    ] {
        assert_eq!(
            centre.signed(&status_params(sid, status)).await.status(),
            200
        );
        let activity = activity(&centre.gateway, key, activity_id).await;
        assert_eq!(activity.status, expected);
    }
}

#[tokio::test]
async fn batches_over_the_hours_budget_are_refused_whole() {
    let omni = Omni::start_with(&[("outbound_requests_per_hour", "2")]).await;
    let (config, flow) = sms_flow(&omni, false).await;
    let contacts: Vec<Contact> = (0..250).map(|n| contact(n, None)).collect();
    let refused = send(&omni.gateway, &flow, &config, &list(contacts), None).await;
    assert_eq!(refused.status(), 429, "{}", refused.text());
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after));
    let answer: SendAnswer = read(&refused);
    assert_eq!(answer.error.unwrap().code, "rate_limited");
    assert_eq!(answer.retry_after_seconds, Some(retry_after));
    assert_eq!(answer.summary, summary(200, 0, 0, 50));
    assert_eq!(answer.not_attempted, Some((200..250).collect()));
    // Nothing of the refused batch reached TeleSign.
    let sent_to: HashSet<String> = sms_sends(&omni)
        .iter()
        .map(|r| r.form_value("phone_number").unwrap())
        .collect();
    assert_eq!(sent_to.len(), 200);
    assert!((200..250).all(|n| !sent_to.contains(&number(n)[1..])));
    // The hour is spent: a one-contact call is refused too.
    let refused = send(
        &omni.gateway,
        &flow,
        &config,
        &list(vec![contact(300, None)]),
        None,
    )
    .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(sms_sends(&omni).len(), 200);
    // The next hour has a budget again.
    omni.gateway.app.clock().advance(Duration::from_secs(3600));
    let sent = send(
        &omni.gateway,
        &flow,
        &config,
        &list(vec![contact(300, None)]),
        None,
    )
    .await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
}

#[tokio::test]
async fn two_dev_hosts_on_one_redis_share_the_budget() {
    let Some(url) = redis_url() else { return };
    let backend = Backend::Redis(url);
    let telesign = sim::telesign(CUSTOMER_ID, API_KEY);
    let base = telesign.base();
    let variables = [
        ("outbound_requests_per_hour", "3"),
        ("telesign_api_base", base.as_str()),
    ];
    let (one, other) = tokio::join!(
        Gateway::start_on(&backend, &variables),
        Gateway::start_on(&backend, &variables),
    );
    let org = one.new_org("Contoso").await;
    one.create(
        &org.key,
        "/api/accounts",
        json!({
            "provider": "telesign", "name": "SMS", "customer_id": CUSTOMER_ID, "api_key": API_KEY,
            "numbers": [{"number": SMS_NUMBER, "type": "long_code"}],
        }),
    )
    .await;
    let (config, flow) = sms_flow_of(&one, &org.key, false).await;
    let two_batches = |from: usize| list((from..from + 200).map(|n| contact(n, None)).collect());
    let first = send(&one, &flow, &config, &two_batches(0), None).await;
    assert_eq!(first.status(), 200, "{}", first.text());
    let second = send(&other, &flow, &config, &two_batches(1000), None).await;
    assert_eq!(second.status(), 429, "{}", second.text());
    assert_eq!(read::<SendAnswer>(&second).summary.sent, 100);
    assert_eq!(posts(&telesign, "/v1/messaging").len(), 300);
}

#[tokio::test]
async fn an_idempotency_key_sends_once_even_when_retried_concurrently() {
    let omni = Omni::start().await;
    let (config, flow) = sms_flow(&omni, false).await;
    let body = list((0..150).map(|n| contact(n, None)).collect());

    let first = send(&omni.gateway, &flow, &config, &body, Some("flow-run-1")).await;
    assert_eq!(first.status(), 200, "{}", first.text());
    // The key-value cost does not grow with the contacts: reads are the API
    // key, the key's answer, its lease (probe and confirmation), the
    // configuration, its template and account, the batches' records, and
    // one per batch (one more for contacts already known); writes are the
    // key's lease, the hour's budget, two per batch (what is about to go
    // before sending, what went after), one per batch for the slots in the
    // contacts' list of the contacts it makes, and the kept answer.
    assert_eq!(
        (first.kv.reads, first.kv.writes, first.kv.listings),
        (9, 9, 0)
    );
    let known = send(&omni.gateway, &flow, &config, &body, Some("flow-run-0")).await;
    assert_eq!(
        (known.kv.reads, known.kv.writes, known.kv.listings),
        (11, 7, 0)
    );
    let retry = send(&omni.gateway, &flow, &config, &body, Some("flow-run-1")).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(read::<SendAnswer>(&retry), read::<SendAnswer>(&first));
    assert_eq!(sms_sends(&omni).len(), 300);

    // The same key with another list is refused; a new key sends.
    let other = list(vec![contact(500, None)]);
    let reused = send(&omni.gateway, &flow, &config, &other, Some("flow-run-1")).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(reused.json()["error"]["code"], "idempotency_key_reused");

    // Two calls with one key at once: one sends, both answer the same.
    let (a, b) = tokio::join!(
        send(&omni.gateway, &flow, &config, &body, Some("flow-run-2")),
        send(&omni.gateway, &flow, &config, &body, Some("flow-run-2")),
    );
    assert_eq!(
        (a.status(), b.status()),
        (200, 200),
        "{} {}",
        a.text(),
        b.text()
    );
    assert_eq!(read::<SendAnswer>(&a), read::<SendAnswer>(&b));
    assert_eq!(sms_sends(&omni).len(), 450);
    let replayed = [
        a.header("idempotent-replayed"),
        b.header("idempotent-replayed"),
    ];
    assert_eq!(replayed.iter().filter(|h| h.is_some()).count(), 1);
}

/// A cron host holds `dispatch_token`, which sends due jobs and nothing
/// else; the operator's `admin_token` does not send them.
#[tokio::test]
async fn dispatch_takes_the_schedulers_own_token_which_creates_no_organisation() {
    let gateway = Gateway::start(&[]).await;
    let dispatched = gateway
        .call("POST", "/api/outbound/dispatch", Some(DISPATCH_TOKEN), None)
        .await;
    assert_eq!(dispatched.status(), 200, "{}", dispatched.text());
    let refused = gateway
        .refused(401, "POST", "/api/outbound/dispatch", OPERATOR_TOKEN, None)
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("dispatch_token"),
        "{refused}"
    );
    let org = json!({"name": "Contoso"});
    let refused = gateway
        .refused(401, "POST", "/api/orgs", DISPATCH_TOKEN, Some(&org))
        .await;
    assert!(refused["message"].as_str().unwrap().contains("admin_token"));

    let closed = Gateway::start(&[("dispatch_token", "")]).await;
    let refused = closed
        .refused(403, "POST", "/api/outbound/dispatch", OPERATOR_TOKEN, None)
        .await;
    assert_eq!(refused["code"], "dispatch_disabled");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("SPIN_VARIABLE_DISPATCH_TOKEN"));
}

#[tokio::test]
async fn a_scheduled_job_is_sent_once_by_concurrent_dispatchers() {
    let omni = Omni::start().await;
    let (config, flow) = sms_flow(&omni, false).await;
    let body = SendRequest {
        delay_seconds: Some(3600),
        ..list((0..120).map(|n| contact(n, Some("nb"))).collect())
    };
    let scheduled = send(&omni.gateway, &flow, &config, &body, None).await;
    assert_eq!(scheduled.status(), 202, "{}", scheduled.text());
    let scheduled: JobView = read(&scheduled);
    assert_eq!(scheduled.state, JobState::Scheduled);

    // Not due yet: nothing goes.
    let early = dispatch(&omni.gateway).await;
    assert_eq!((early.dispatched.len(), early.due_later), (0, 1));
    assert!(sms_sends(&omni).is_empty());
    let waiting = job(&omni.gateway, &flow, &scheduled.id).await;
    assert_eq!(waiting.progress, progress(0, 120));

    // Due: two dispatchers at once send it once.
    omni.gateway.app.clock().advance(Duration::from_secs(3601));
    let (a, b): (DispatchAnswer, DispatchAnswer) =
        tokio::join!(dispatch(&omni.gateway), dispatch(&omni.gateway));
    assert_eq!(a.dispatched.len() + b.dispatched.len(), 1);
    assert_eq!(sms_sends(&omni).len(), 120);
    let done = job(&omni.gateway, &flow, &scheduled.id).await;
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.progress, progress(120, 0));
    let results = done.results.expect("one job's read has its results");
    assert_eq!(results.len(), 120);
    assert_eq!(results[7].status, Status::Sent);
    assert!(dispatch(&omni.gateway).await.dispatched.is_empty());
    assert_eq!(sms_sends(&omni).len(), 120);

    // `send_at` works the same; only the operator may dispatch.
    let at = SendRequest {
        send_at: Some("2020-01-01T00:00:00Z".into()),
        ..list(vec![contact(700, None)])
    };
    assert_eq!(
        send(&omni.gateway, &flow, &config, &at, None)
            .await
            .status(),
        202
    );
    let refused = omni
        .gateway
        .call("POST", "/api/outbound/dispatch", Some(&flow), None)
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(dispatch(&omni.gateway).await.dispatched.len(), 1);
    assert_eq!(sms_sends(&omni).len(), 121);
}

/// A flow's jobs are listed newest first, a page at a time, with their
/// progress; another organisation's are not among them.
#[tokio::test]
async fn scheduled_jobs_are_listed_newest_first_with_their_progress() {
    let omni = Omni::start().await;
    let (config, flow) = sms_flow(&omni, false).await;
    let mut ids = Vec::new();
    for (count, delay) in [(3, 0), (1, 3600), (2, 3600)] {
        let body = SendRequest {
            delay_seconds: Some(delay),
            ..list((0..count).map(|n| contact(n, None)).collect())
        };
        let scheduled = send(&omni.gateway, &flow, &config, &body, None).await;
        assert_eq!(scheduled.status(), 202, "{}", scheduled.text());
        ids.push(read::<JobView>(&scheduled).id);
    }
    let dispatched = omni
        .gateway
        .call("POST", "/api/outbound/dispatch", Some(DISPATCH_TOKEN), None)
        .await;
    assert_eq!(dispatched.status(), 200, "{}", dispatched.text());

    let page: Page<JobView> =
        serde_json::from_value(omni.get(&flow, "/api/outbound/jobs?limit=2").await).unwrap();
    let listed: Vec<&str> = page.items.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(page.items[0].state, JobState::Scheduled);
    assert_eq!(page.items[0].progress, progress(0, 2));
    let cursor = page.next_cursor.expect("a second page");
    let rest = omni
        .get(
            &omni.org.key,
            &format!("/api/outbound/jobs?limit=2&cursor={cursor}"),
        )
        .await;
    assert!(rest["items"][0].get("results").is_none(), "{rest}");
    let rest: Page<JobView> = serde_json::from_value(rest).unwrap();
    assert_eq!(rest.next_cursor, None);
    assert_eq!(rest.items[0].id, ids[0]);
    assert_eq!(rest.items[0].state, JobState::Done);
    assert_eq!(rest.items[0].progress, progress(3, 0));

    // Another organisation sees none of them; agents may not list jobs.
    let other = omni.gateway.new_org("Fabrikam").await;
    assert_eq!(
        omni.get(&other.key, "/api/outbound/jobs").await,
        json!({"items": [], "next_cursor": null})
    );
    let agent = omni.agent("Bea", 2, &["general"]).await;
    omni.gateway
        .refused(403, "GET", "/api/outbound/jobs", &agent.key, None)
        .await;
    let bad = omni
        .gateway
        .refused(422, "GET", "/api/outbound/jobs?limit=500", &flow, None)
        .await;
    assert_eq!(bad["field"], "limit");
}

/// A page of jobs costs the same store reads whatever the jobs' size and
/// whether they ran: nothing of their batches is read.
#[tokio::test]
async fn a_page_of_jobs_costs_the_same_reads_for_ten_thousand_contacts_as_for_one() {
    let omni = Omni::start().await;
    let (config, flow) = sms_flow(&omni, false).await;
    let schedule = |count: usize, delay: i64| {
        let contacts: Vec<Value> = (0..count)
            .map(|n| json!({"tocontactid": number(n), "channelid": "sms", "optin": true, "CustomerName": "K", "CaseName": "C"}))
            .collect();
        let body = json!({"ContactList": contacts, "delay_seconds": delay});
        let (gateway, flow, config) = (&omni.gateway, flow.clone(), config.clone());
        async move {
            let scheduled = send(gateway, &flow, &config, &body, None).await;
            assert_eq!(scheduled.status(), 202, "{}", scheduled.text());
        }
    };
    for _ in 0..2 {
        schedule(10_000, 3600).await;
    }
    // The small ones run: their batches' results are stored beside them.
    for _ in 0..2 {
        schedule(1, 0).await;
    }
    assert_eq!(dispatch(&omni.gateway).await.dispatched.len(), 2);
    let list = |query: String| {
        let gateway = &omni.gateway;
        let flow = flow.clone();
        async move {
            let handled = gateway
                .call(
                    "GET",
                    &format!("/api/outbound/jobs?{query}"),
                    Some(&flow),
                    None,
                )
                .await;
            assert_eq!(handled.status(), 200, "{}", handled.text());
            let page: Page<JobView> = read(&handled);
            (page, handled.kv)
        }
    };
    let (small, small_cost) = list("limit=2".into()).await;
    let cursor = small.next_cursor.clone().expect("the big ones follow");
    let (big, big_cost) = list(format!("limit=2&cursor={cursor}")).await;
    assert!(small
        .items
        .iter()
        .all(|job| job.contacts == 1 && job.progress == progress(1, 0)));
    assert!(big
        .items
        .iter()
        .all(|job| job.contacts == 10_000 && job.progress == progress(0, 10_000)));
    // Reads: the key, the index's entries, the jobs. (The first page also
    // takes the index's count, an `increment` by 0: a write.)
    for cost in [small_cost, big_cost] {
        assert_eq!((cost.reads, cost.listings), (3, 0), "{cost:?}");
    }
}

#[tokio::test]
async fn bad_calls_are_refused_with_nothing_sent() {
    let omni = Omni::start().await;
    let (config, flow) = sms_flow(&omni, false).await;
    let agent = omni.agent("Bea", 2, &["general"]).await;
    let one = list(vec![contact(1, None)]);
    for (body, status, code) in [
        (json!({"contacts": []}), 400, "not_a_contact_list"),
        (
            json!({"ContactList": "everyone"}),
            400,
            "not_a_contact_list",
        ),
        (json!({"ContactList": []}), 400, "not_a_contact_list"),
        (json!([raw(contact(1, None))]), 400, "not_a_contact_list"),
        (
            json!({"ContactList": [raw(contact(1, None))], "delay_seconds": "soon"}),
            422,
            "wrong_type",
        ),
    ] {
        let refused = send(&omni.gateway, &flow, &config, &body, None).await;
        assert_eq!(refused.status(), status, "{body}: {}", refused.text());
        assert_eq!(refused.json()["error"]["code"], code);
    }
    let unknown = send(&omni.gateway, &flow, &"0".repeat(32), &one, None).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        send(&omni.gateway, &agent.key, &config, &one, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        send(&omni.gateway, "sb_nope", &config, &one, None)
            .await
            .status(),
        401
    );
    let bad_key = send(&omni.gateway, &flow, &config, &one, Some("two words")).await;
    assert_eq!(bad_key.status(), 400);
    let get = omni
        .gateway
        .call(
            "GET",
            &format!("/api/outbound/{config}/send"),
            Some(&flow),
            None,
        )
        .await;
    assert_eq!(get.status(), 405);
    assert_eq!(get.header("allow"), Some("POST"));
    assert!(sms_sends(&omni).is_empty());
}

/// Sends one contact of `sms_flow` to `address`; returns its result and
/// whether TeleSign received a message for it.
async fn send_to(omni: &Omni, flow: &str, config: &str, address: &str) -> (ContactResult, bool) {
    let before = sms_sends(omni).len();
    let one = Contact {
        tocontactid: address.into(),
        ..contact(0, None)
    };
    let sent = send(&omni.gateway, flow, config, &list(vec![one]), None).await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
    let reached = sms_sends(omni)[before..]
        .iter()
        .any(|r| r.form_value("phone_number").as_deref() == Some(&address[1..]));
    (read::<SendAnswer>(&sent).results.remove(0), reached)
}

/// R-IN-8: the customer's STOP stays with their address whatever is done
/// to their contact, and only their own START or UNSTOP undoes it.
#[tokio::test]
async fn a_stop_stays_with_the_address_until_the_customer_opts_back_in() {
    let omni = Omni::start().await;
    let agent = omni.agent("Gus", 5, &["general"]).await;
    let (config, flow) = sms_flow(&omni, false).await;
    let address = "+15557654321";
    let customer_says = async |n: u32, text: &str| {
        let reference = format!("BBBB{n:028}");
        let handled = omni
            .telesign_callback(&mo_sms(&reference, &address[1..], text))
            .await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
        handled
    };
    let skipped = async |when: &str| {
        let (result, reached) = send_to(&omni, &flow, &config, address).await;
        let code = result.reason.as_ref().map(|r| r.code.as_str());
        assert_eq!(
            (result.status, code),
            (Status::Skipped, Some("opted_out")),
            "{when}: {result:?}"
        );
        assert!(!reached, "{when}: TeleSign got a message");
        result
    };
    customer_says(1, "Hello").await;
    let conversation = conversation_with(&omni, address).await;
    let id = conversation["id"].as_str().unwrap().to_owned();
    let first_contact = conversation["contact_id"].as_str().unwrap().to_owned();

    // STOP, on a live conversation, within its budget: the opt-out is
    // written with the message, unread.
    let stop = customer_says(2, "Stop").await;
    assert!(stop.kv.reads <= 3, "reads: {:?}", stop.kv);
    assert!(stop.kv.writes <= 3, "writes: {:?}", stop.kv);
    let contact = omni
        .get(&agent.key, &format!("/api/contacts/{first_contact}"))
        .await;
    assert!(
        contact["addresses"][0]["opted_out_at"].is_string(),
        "{contact}"
    );
    skipped("after STOP").await;

    // The agent links the address to another contact: still skipped.
    let kari = omni
        .gateway
        .create(
            &omni.org.key,
            "/api/contacts",
            json!({"name": "Kari Nordmann"}),
        )
        .await;
    let kari_id = kari["id"].as_str().unwrap();
    let linked = omni
        .act(
            &agent.key,
            &id,
            &Link {
                contact_id: kari_id.to_owned(),
            },
        )
        .await;
    assert_eq!(linked.status(), 200, "{}", linked.text());
    let result = skipped("after a link").await;
    assert_eq!(result.contact_id.as_deref(), Some(kari_id));
    let kari = omni
        .get(&agent.key, &format!("/api/contacts/{kari_id}"))
        .await;
    assert_eq!(kari["addresses"][0]["address"], address);
    assert!(kari["addresses"][0]["opted_out_at"].is_string(), "{kari}");

    // Nothing an admin, agent or flow does through the API clears it.
    let patched = omni
        .gateway
        .call(
            "PATCH",
            &format!("/api/contacts/{kari_id}"),
            Some(&omni.org.key),
            Some(&json!({"opted_out": {}})),
        )
        .await;
    assert_eq!(patched.status(), 422, "{}", patched.text());
    assert_eq!(patched.json()["error"]["code"], "unknown_field");
    let deleted = omni
        .gateway
        .call(
            "DELETE",
            &format!("/api/contacts/{kari_id}"),
            Some(&agent.key),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204, "{}", deleted.text());
    skipped("after the contact was deleted").await;
    // The next conversation re-creates a contact for the address: still
    // out. (A live conversation keeps the contact it has.)
    let closed = omni.act(&agent.key, &id, &Close {}).await;
    assert_eq!(closed.status(), 200, "{}", closed.text());
    customer_says(3, "Are you there?").await;
    let result = skipped("after the contact was re-created").await;
    let recreated = result.contact_id.as_deref().unwrap();
    assert_ne!(recreated, kari_id);
    let recreated = omni
        .get(&agent.key, &format!("/api/contacts/{recreated}"))
        .await;
    assert!(
        recreated["addresses"][0]["opted_out_at"].is_string(),
        "{recreated}"
    );

    // Only the customer opts back in.
    customer_says(4, "START").await;
    let (result, reached) = send_to(&omni, &flow, &config, address).await;
    assert_eq!(result.status, Status::Sent, "{result:?}");
    assert!(reached);
    customer_says(5, "quit").await;
    skipped("after QUIT").await;
    customer_says(6, "Unstop").await;
    let (result, reached) = send_to(&omni, &flow, &config, address).await;
    assert_eq!(result.status, Status::Sent, "{result:?}");
    assert!(reached);
}

/// A job's progress with nothing skipped or failed.
fn progress(sent: usize, pending: usize) -> JobProgress {
    JobProgress {
        sent,
        skipped: 0,
        failed: 0,
        pending,
        unknown: None,
    }
}
