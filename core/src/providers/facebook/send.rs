//! Replies and notices through the Send API, from the conversation's page,
//! tagged HUMAN_AGENT when the reply window calls for it.

use super::{send, MessagingType, Outgoing, Settings};
use crate::api::ApiError;
use crate::conversations::reply::Window;
use crate::ports::Ports;
use crate::providers::{api_base, SendOutcome};

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, ApiError> {
    let api_base = api_base(ports.variables, "graph_api_base")?;
    let thread = message.thread;
    let page = settings
        .pages
        .iter()
        .find(|page| page.page_id == thread.ours)
        .ok_or_else(|| page_removed(thread.ours, message.account_id))?;
    let outgoing = Outgoing {
        page_token: &page.access_token,
        app_secret: &settings.app_secret,
        psid: thread.customer,
        text: message.content.text(),
        attachments: message.content.attachments(),
        messaging_type: match message.window {
            Window::Open => MessagingType::Response,
            Window::HumanAgentTag => MessagingType::HumanAgent,
        },
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}

fn page_removed(page_id: &str, account_id: &str) -> ApiError {
    ApiError::conflict(
        "channel_removed",
        format!(
            "page {page_id} is no longer connected to account {account_id}; replies cannot be sent from it"
        ),
    )
}
