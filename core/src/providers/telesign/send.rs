//! Replies and notices through TeleSign: the core's message as an SMS, with
//! the account's delivery-report callback.

use super::{send_sms, Settings, Sms};
use crate::api::ApiError;
use crate::ports::Ports;
use crate::providers::{api_base, callback_url, Outgoing, Provider, SendOutcome};

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &Outgoing<'_>,
) -> Result<SendOutcome, ApiError> {
    let api_base = api_base(ports.variables, "telesign_api_base")?;
    let base_url = crate::config::public_base_url(ports.variables);
    let callback = callback_url(&base_url, Provider::Telesign, message.account_id);
    let sms = Sms {
        customer_id: &settings.customer_id,
        api_key: &settings.api_key,
        phone_number: message.thread.customer.trim_start_matches('+'),
        sender_id: message.thread.ours,
        message: message.content.text(),
        external_id: None,
        callback_url: Some(&callback),
    };
    let nonce = ports.random.uuid();
    let now = ports.clock.now_millis();
    Ok(send_sms(ports.http, &api_base, &sms, now, &nonce).await)
}
