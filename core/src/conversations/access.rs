//! Who may do what with a conversation (R-CONV-5): the one rule every
//! conversation route applies.
//!
//! Admins may do anything. An agent works the conversations that are its
//! own — assigned to it, parked by it, or closed while it had them — and
//! may read and accept an open one that waits in one of its queues:
//! accepting is what an agent does with those. Anything else is another
//! agent's, or the admins' to hand out.
//!
//! A refusal is `403 not_your_conversation` (`not_in_queue` for an open
//! one in a queue the agent does not serve), not a 404: the conversation
//! belongs to the agent's own organisation, whose people hand it around,
//! and an agent whose conversation a colleague or an admin just took over
//! should learn that, not that it vanished. Other organisations' ids stay
//! 404, as everywhere: they are not in this organisation's keys at all.

use super::{Conversation, State};
use crate::error::Error;

/// What a request does with a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read it and its messages.
    Read,
    /// Take it from its queue.
    Accept,
    /// Anything else: reply, transfer, park, resume, close, link.
    Work,
}

/// Whether the agent may `need` the conversation. `queues` gives the
/// agent's queues; it is asked only for an open conversation.
pub fn check(
    agent_id: &str,
    queues: impl FnOnce() -> Result<Vec<String>, Error>,
    conversation: &Conversation,
    need: Need,
) -> Result<(), Error> {
    if conversation.agent_id.as_deref() == Some(agent_id) && conversation.state != State::Open {
        return Ok(());
    }
    let waiting_in = match (conversation.state, need) {
        (State::Open, Need::Read | Need::Accept) => conversation.queue_id.as_ref(),
        (State::Open, Need::Work) | (State::Active | State::Waiting | State::Closed, _) => None,
    };
    match waiting_in {
        Some(queue) if queues()?.contains(queue) => Ok(()),
        Some(queue) => Err(not_in_queue(queue)),
        None => Err(not_yours(conversation)),
    }
}

fn not_in_queue(queue: &str) -> Error {
    Error::forbidden(
        "not_in_queue",
        format!("this conversation waits in queue {queue}, which you do not serve; an admin can add it to your queues"),
    )
}

fn not_yours(conversation: &Conversation) -> Error {
    let fix = match conversation.state {
        State::Open => "accept it first if it waits in one of your queues, or ask an admin",
        State::Active | State::Waiting | State::Closed => "ask its agent or an admin",
    };
    Error::forbidden(
        "not_your_conversation",
        format!(
            "this conversation is {} and not assigned to you; {fix}",
            conversation.state.name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locale::Locale;

    fn conversation(state: State, queue: Option<&str>, agent: Option<&str>) -> Conversation {
        Conversation {
            id: "c".repeat(32),
            state,
            channel: crate::channel::Channel::Sms,
            workstream_id: "w".into(),
            account_id: "a".into(),
            channel_address: "1".into(),
            customer_address: "+2".into(),
            contact_id: "k".into(),
            profile_name: None,
            language: Locale::parse("en").unwrap(),
            queue_id: queue.map(str::to_owned),
            agent_id: agent.map(str::to_owned),
            routed_by: None,
            with_bot: false,
            version: 1,
            queued_at: 0,
            assigned_at: 0,
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
            closed_at: None,
        }
    }

    fn code(result: Result<(), Error>) -> Option<&'static str> {
        result.err().map(|error| {
            assert_eq!(error.status(), 403);
            error.code()
        })
    }

    #[test]
    fn an_agent_works_its_own_conversations_in_every_state_but_open() {
        for state in [State::Active, State::Waiting, State::Closed] {
            let mine = conversation(state, Some("q"), Some("ann"));
            for need in [Need::Read, Need::Accept, Need::Work] {
                let queues = || -> Result<Vec<String>, Error> { panic!("not asked") };
                assert_eq!(code(check("ann", queues, &mine, need)), None);
            }
            let no_queues = || Ok(Vec::<String>::new());
            assert_eq!(
                code(check("bob", no_queues, &mine, Need::Read)),
                Some("not_your_conversation"),
                "{state:?}"
            );
            assert_eq!(
                code(check("bob", || Ok(vec!["q".into()]), &mine, Need::Work)),
                Some("not_your_conversation")
            );
        }
    }

    #[test]
    fn an_open_conversation_is_read_and_accepted_from_the_agents_queues_only() {
        let waiting = conversation(State::Open, Some("q"), None);
        let serves = || Ok(vec!["q".to_owned()]);
        assert_eq!(code(check("ann", serves, &waiting, Need::Read)), None);
        assert_eq!(code(check("ann", serves, &waiting, Need::Accept)), None);
        assert_eq!(
            code(check("ann", serves, &waiting, Need::Work)),
            Some("not_your_conversation")
        );
        let other = || Ok(vec!["other".to_owned()]);
        assert_eq!(
            code(check("ann", other, &waiting, Need::Accept)),
            Some("not_in_queue")
        );
        // With the bot, in no queue yet: not an agent's to take.
        let with_bot = conversation(State::Open, None, None);
        assert_eq!(
            code(check("ann", serves, &with_bot, Need::Accept)),
            Some("not_your_conversation")
        );
    }
}
