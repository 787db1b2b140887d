//! Typed documents in the key-value store, and the indexes that list them.
//!
//! Layout (ARCHITECTURE.md principle 3): every organisation's data lives under
//! `org/{org}/`; a document is one key, `org/{org}/{kind}/{id}`. Listing never
//! asks the store for its keys: each kind has an index that is a numbered log
//! of ids (`org/{org}/{kind}-index/{n}`), numbered by an atomic counter, so
//! concurrent creates never overwrite each other's index entries. A create is
//! one `increment` (the slot) and one `set_many` (the document, its index
//! entry and any lookup keys), so it is either wholly there or not at all; a
//! failed write leaves at most an empty slot, which listing skips, as it
//! skips the slots of deleted documents.
//!
//! Uniqueness (a number in one workstream, a Facebook page in one account)
//! uses [`claim`]: an owner record per name, written with the document that
//! holds the name, and a lease to decide between concurrent claimants of a
//! free one. Spin's SQLite store cannot do an exclusive compare-and-swap on
//! an absent key, so nothing here relies on one (principle 4).

use crate::encoding::hex;
use crate::error::Error;
use crate::lease::{self, Lease};
use crate::ports::{KeyValue, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A kind of document an organisation owns.
pub trait Document: Serialize + DeserializeOwned {
    /// The key segment, e.g. `queue`.
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// The index slot that lists a document whose id can be created again
    /// after a delete (and so be in the index twice): the other entries
    /// are stale. `None`: every entry naming the document lists it.
    fn listed_at(&self) -> Option<i64> {
        None
    }
}

/// `impl Document` for a type with an `id: String` field.
#[macro_export]
macro_rules! document {
    ($type:ty, $kind:literal) => {
        impl $crate::store::Document for $type {
            const KIND: &'static str = $kind;
            fn id(&self) -> &str {
                &self.id
            }
        }
    };
}

pub fn document_key<D: Document>(org: &str, id: &str) -> String {
    format!("org/{org}/{}/{id}", D::KIND)
}

/// The log listing every document of a kind, in creation order.
pub fn index<D: Document>(org: &str) -> Log {
    Log::new(format!("org/{org}/{}-index", D::KIND))
}

/// An append-only numbered log: entries at `{prefix}/{n}` (n from 1), their
/// number from the atomic counter `{prefix}/count`. Appends never collide,
/// so concurrent writers need no lock; an entry whose write failed leaves an
/// empty slot, which readers skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    prefix: String,
}

impl Log {
    pub fn new(prefix: impl Into<String>) -> Log {
        Log {
            prefix: prefix.into(),
        }
    }

    fn count_key(&self) -> String {
        format!("{}/count", self.prefix)
    }

    pub fn slot_key(&self, slot: i64) -> String {
        format!("{}/{slot}", self.prefix)
    }

    /// Takes the next slot (one write); the caller writes its entry there.
    pub fn reserve(&self, kv: &dyn KeyValue) -> Result<i64, Error> {
        Ok(kv.increment(&self.count_key(), 1)?)
    }

    /// Takes the next `count` slots in one write; returns the first.
    pub fn reserve_many(&self, kv: &dyn KeyValue, count: i64) -> Result<i64, Error> {
        Ok(kv.increment(&self.count_key(), count)? - count + 1)
    }

    /// The number of slots taken so far.
    pub fn len(&self, kv: &dyn KeyValue) -> Result<i64, Error> {
        Ok(kv.increment(&self.count_key(), 0)?)
    }

    /// The filled slots in `from..=to`, in order, in one read.
    pub fn read(
        &self,
        kv: &dyn KeyValue,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        let slots: Vec<i64> = (from.max(1)..=to).collect();
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = slots.iter().map(|slot| self.slot_key(*slot)).collect();
        Ok(slots
            .into_iter()
            .zip(kv.get_many(&keys)?)
            .filter_map(|(slot, value)| value.map(|bytes| (slot, bytes)))
            .collect())
    }
}

pub fn encode(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("documents serialize to JSON")
}

pub fn decode<D: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<D, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::CorruptDocument {
        key: key.to_owned(),
        reason: error.to_string(),
    })
}

/// [`decode`] for a value a `get-many` may not have found.
/// A key to read, and whether it must be read or is only worth reading
/// when it rides along in a round trip made anyway.
pub type Wanted = (String, bool);

/// The values of `wanted`, in order: each key that must be read, and the
/// others too on a store that batches reads (`None`: not read). One round
/// trip where reads batch; where they do not, the keys that must be read,
/// one by one.
pub fn read_wanted(
    kv: &dyn KeyValue,
    wanted: &[Wanted],
) -> Result<Vec<Option<Option<Vec<u8>>>>, StoreError> {
    let batches = kv.batches_reads();
    let keys: Vec<String> = wanted
        .iter()
        .filter(|(_, needed)| batches || *needed)
        .map(|(key, _)| key.clone())
        .collect();
    let mut found = match keys.is_empty() {
        true => Vec::new(),
        false => kv.get_many(&keys)?,
    }
    .into_iter();
    Ok(wanted
        .iter()
        .map(|(_, needed)| (batches || *needed).then(|| found.next().flatten()))
        .collect())
}

pub fn decode_found<D: DeserializeOwned>(
    key: &str,
    found: Option<Vec<u8>>,
) -> Result<Option<D>, Error> {
    found.map(|bytes| decode(key, &bytes)).transpose()
}

/// Reads one document of the organisation; `None` if it does not exist (in
/// this organisation: another org's id is simply absent here).
pub fn load<D: Document>(kv: &dyn KeyValue, org: &str, id: &str) -> Result<Option<D>, Error> {
    if !is_id(id) {
        return Ok(None);
    }
    let key = document_key::<D>(org, id);
    kv.get(&key)?.map(|bytes| decode(&key, &bytes)).transpose()
}

/// Like [`load`], but a missing document is the 404 the API answers.
pub fn require<D: Document>(kv: &dyn KeyValue, org: &str, id: &str) -> Result<D, Error> {
    load(kv, org, id)?.ok_or_else(|| {
        Error::not_found(
            "not_found",
            format!(
                "no {} with id {id} in this organisation",
                D::KIND.replace('_', " ")
            ),
        )
    })
}

/// Reads several documents in one round trip; missing ones are left out.
pub fn load_many<D: Document>(
    kv: &dyn KeyValue,
    org: &str,
    ids: &[String],
) -> Result<Vec<D>, Error> {
    let keys: Vec<String> = ids.iter().map(|id| document_key::<D>(org, id)).collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values = kv.get_many(&keys)?;
    keys.iter()
        .zip(values)
        .filter_map(|(key, value)| value.map(|bytes| decode(key, &bytes)))
        .collect()
}

/// Adds a new document, its index entry and `extra` keys in one write
/// transaction (after one `increment` for the index slot).
pub fn insert<D: Document>(
    kv: &dyn KeyValue,
    org: &str,
    document: &D,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let index = index::<D>(org);
    let slot = index.reserve(kv)?;
    let mut entries = vec![
        (document_key::<D>(org, document.id()), encode(document)),
        (index.slot_key(slot), document.id().as_bytes().to_vec()),
    ];
    entries.extend(extra);
    kv.set_many(&entries)?;
    Ok(())
}

/// Replaces a document (and writes `extra` keys) in one write transaction.
pub fn save<D: Document>(
    kv: &dyn KeyValue,
    org: &str,
    document: &D,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let mut entries = vec![(document_key::<D>(org, document.id()), encode(document))];
    entries.extend(extra);
    kv.set_many(&entries)?;
    Ok(())
}

/// Deletes a document and `extra` keys in one write transaction.
pub fn remove<D: Document>(
    kv: &dyn KeyValue,
    org: &str,
    id: &str,
    extra: Vec<String>,
) -> Result<(), Error> {
    let mut keys = vec![document_key::<D>(org, id)];
    keys.extend(extra);
    kv.delete_many(&keys)?;
    Ok(())
}

/// One page of a listing. `next_cursor` is present while there may be more.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 200;

/// Lists documents in creation order from the index, starting after
/// `cursor` (an index position from a previous page).
pub fn list<D: Document>(
    kv: &dyn KeyValue,
    org: &str,
    cursor: i64,
    limit: usize,
) -> Result<Page<D>, Error> {
    scan(&index::<D>(org), kv, cursor, limit, |entries| {
        let listed = listed::<D>(kv, org, entries)?;
        Ok(listed.into_iter().map(|(_, document)| document).collect())
    })
}

/// The documents index `entries` list, each with its entry's slot, in one
/// read: deleted ones and stale entries ([`Document::listed_at`]) left out.
pub fn listed<D: Document>(
    kv: &dyn KeyValue,
    org: &str,
    entries: &[(i64, Vec<u8>)],
) -> Result<Vec<(i64, D)>, Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = entries
        .iter()
        .map(|(_, id)| document_key::<D>(org, &String::from_utf8_lossy(id)))
        .collect();
    let mut listed = Vec::new();
    for (((slot, _), key), found) in entries.iter().zip(&keys).zip(kv.get_many(&keys)?) {
        if let Some(document) = decode_found::<D>(key, found)? {
            if document.listed_at().is_none_or(|at| at == *slot) {
                listed.push((*slot, document));
            }
        }
    }
    Ok(listed)
}

/// Pages through `log` from position `cursor`: `load` turns a run of
/// entries into the items they stand for (dropping stale ones), until
/// `limit` items or the end of the log.
pub fn scan<T>(
    log: &Log,
    kv: &dyn KeyValue,
    cursor: i64,
    limit: usize,
    mut load: impl FnMut(&[(i64, Vec<u8>)]) -> Result<Vec<T>, Error>,
) -> Result<Page<T>, Error> {
    let count = log.len(kv)?;
    let mut items = Vec::new();
    let mut position = cursor.max(0);
    while items.len() < limit && position < count {
        let end = (position + (limit - items.len()) as i64).min(count);
        items.extend(load(&log.read(kv, position + 1, end)?)?);
        position = end;
    }
    Ok(Page {
        items,
        next_cursor: (position < count).then(|| position.to_string()),
    })
}

/// Every document of a kind, for the admin paths that check references
/// (never on a webhook, outbound or agent path).
pub fn list_all<D: Document>(kv: &dyn KeyValue, org: &str) -> Result<Vec<D>, Error> {
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let page = list::<D>(kv, org, cursor, MAX_PAGE_SIZE)?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = next.parse().unwrap_or(i64::MAX),
            None => return Ok(all),
        }
    }
}

/// Reads `?cursor=` and `?limit=` of a listing request.
pub fn paging(request: &crate::api::Request) -> Result<(i64, usize), Error> {
    let cursor = match request.query_param("cursor") {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| {
                Error::invalid(
                    "cursor",
                    "invalid_cursor",
                    "\"cursor\" must be the next_cursor of a previous page",
                )
            })?,
    };
    let limit = match request.query_param("limit") {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE_SIZE).contains(l))
            .ok_or_else(|| {
                Error::invalid(
                    "limit",
                    "invalid_limit",
                    format!("\"limit\" must be from 1 to {MAX_PAGE_SIZE}"),
                )
            })?,
    };
    Ok((cursor, limit))
}

/// Ids are 128-bit random values as 32 lowercase hex digits (R-TEN-1).
pub fn is_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Who holds a unique name, as [`claim`] found it.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim<L = Lease> {
    /// The caller now holds the name's lease and must write `owner_key` →
    /// its id in the same transaction as the document that uses it, then
    /// release the lease.
    Won(L),
    /// The caller already held it.
    Held,
    /// Someone else holds it (their id), or is claiming it right now (`None`).
    Taken(Option<String>),
}

/// The key naming a unique name's holder; written by the winner.
pub fn owner_key(name: &str) -> String {
    format!("claim/{name}/owner")
}

/// The holder an owner record names; `None` for a name given back.
pub fn holder(record: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(record).ok()?;
    (!text.is_empty() && !text.starts_with(RELEASED)).then(|| text.to_owned())
}

/// What an owner record says once its name was given back by an update.
const RELEASED: &str = "released:";

/// Claims the unique `name` for `owner` at `now`.
///
/// The owner record is the durable fact; claiming a free name is a lease
/// ([`crate::lease`]) until the winner's document and owner record are
/// written, so a save that died holding it keeps nobody out for long. The
/// lease's name follows the owner record, which every release changes, so a
/// name given back is free at once.
pub fn claim(kv: &dyn KeyValue, name: &str, owner: &str, now: i64) -> Result<Claim, Error> {
    let record = kv.get(&owner_key(name))?;
    match record.as_deref().and_then(holder) {
        Some(current) if current == owner => return Ok(Claim::Held),
        Some(current) => return Ok(Claim::Taken(Some(current))),
        None => {}
    }
    let generation = record.map_or_else(|| "-".to_owned(), |r| hex(&r));
    Ok(
        match lease::acquire(kv, &format!("claim/{name}/{generation}"), now)? {
            Some(lease) => Claim::Won(lease),
            None => Claim::Taken(None),
        },
    )
}

/// The write that gives `name` back, in the transaction of the document
/// that stops using it; `release_id` makes the record new (any unique id).
pub fn release(name: &str, release_id: &str) -> (String, Vec<u8>) {
    (
        owner_key(name),
        format!("{RELEASED}{release_id}").into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKeyValue;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Thing {
        id: String,
    }

    impl Document for Thing {
        const KIND: &'static str = "thing";
        fn id(&self) -> &str {
            &self.id
        }
    }

    fn thing(n: u8) -> Thing {
        Thing {
            id: format!("{n:032x}"),
        }
    }

    #[test]
    fn listing_pages_through_the_index_and_skips_deleted_documents() {
        let kv = MemoryKeyValue::default();
        for n in 1..=5 {
            insert(&kv, "o", &thing(n), vec![]).unwrap();
        }
        remove::<Thing>(&kv, "o", &thing(2).id, vec![]).unwrap();
        let first = list::<Thing>(&kv, "o", 0, 2).unwrap();
        assert_eq!(first.items, vec![thing(1), thing(3)]);
        let cursor = first.next_cursor.unwrap().parse().unwrap();
        let second = list::<Thing>(&kv, "o", cursor, 2).unwrap();
        assert_eq!(second.items, vec![thing(4), thing(5)]);
        assert_eq!(second.next_cursor, None);
        assert_eq!(list_all::<Thing>(&kv, "o").unwrap().len(), 4);
        assert!(list::<Thing>(&kv, "other", 0, 10).unwrap().items.is_empty());
    }

    #[test]
    fn only_one_claimer_wins_until_its_lease_ends_and_a_release_frees_the_name() {
        let kv = MemoryKeyValue::default();
        let now = 1_800_000_000_000;
        let Claim::Won(lease) = claim(&kv, "n", "a", now).unwrap() else {
            panic!("the first claimer wins");
        };
        assert_eq!(claim(&kv, "n", "b", now).unwrap(), Claim::Taken(None));
        kv.set(&owner_key("n"), b"a").unwrap();
        lease.release(&kv);
        assert_eq!(claim(&kv, "n", "a", now).unwrap(), Claim::Held);
        assert_eq!(
            claim(&kv, "n", "b", now).unwrap(),
            Claim::Taken(Some("a".into()))
        );
        let (key, value) = release("n", "r1");
        kv.set(&key, &value).unwrap();
        assert!(matches!(claim(&kv, "n", "b", now).unwrap(), Claim::Won(_)));
        // A claimer that died before writing its owner record keeps the name
        // only until its lease ends.
        assert_eq!(claim(&kv, "n", "c", now).unwrap(), Claim::Taken(None));
        let later = now + 2 * crate::lease::LEASE_MILLIS;
        assert!(matches!(
            claim(&kv, "n", "c", later).unwrap(),
            Claim::Won(_)
        ));
    }

    #[test]
    fn ids_are_32_lowercase_hex_digits() {
        assert!(is_id(&"a".repeat(32)));
        assert!(!is_id(&"A".repeat(32)));
        assert!(!is_id("../../etc"));
    }
}
