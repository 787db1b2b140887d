//! Replies and notices through Twilio: the core's message as Twilio's
//! Messages API takes it, with the account's status callback.

use super::{send, Content, Outgoing, Settings};
use crate::api::ApiError;
use crate::conversations::reply;
use crate::ports::Ports;
use crate::providers::{api_base, callback_url, Provider, SendOutcome};

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, ApiError> {
    let api_base = api_base(ports.variables, "twilio_api_base")?;
    let content = match message.content {
        reply::Content::Text { text, attachments } => Content::Text {
            body: text.clone(),
            media_urls: attachments.iter().map(|a| a.url.clone()).collect(),
        },
        reply::Content::Template { rendered, .. } => Content::Template {
            content_sid: rendered.content_sid.clone().unwrap_or_default(),
            variables: rendered.content_variables.clone().unwrap_or_default(),
        },
    };
    let from = format!("whatsapp:{}", message.thread.ours);
    let to = format!("whatsapp:{}", message.thread.customer);
    let base_url = crate::config::public_base_url(ports.variables);
    let callback = callback_url(&base_url, Provider::Twilio, message.account_id);
    let outgoing = Outgoing {
        account_sid: &settings.account_sid,
        auth_token: &settings.auth_token,
        from: &from,
        to: &to,
        content: &content,
        status_callback: Some(&callback),
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}
