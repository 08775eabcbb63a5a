//! How items travel on the usage and request-log streams: one JetStream message carries one
//! or more items (usage events, request-log entries), each a JSON object on a line of its own
//! (`\n` between them). A message of one item is that item's JSON, as before batching, so a
//! reader of batches reads older messages unchanged.
//!
//! JSON as serde writes it never holds a raw newline (newlines inside strings are escaped), so
//! the line break is an unambiguous separator. A batch's `Nats-Msg-Id` is its first item's id
//! followed by `+<count>` ([`batch_id`]); each item keeps its own id, which is what the
//! control plane deduplicates on (a re-batched replay may group items differently).

/// The items of a message: its non-blank lines.
pub fn batch_items(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

/// The `Nats-Msg-Id` of a batch of `count` items whose first item's id is `first`.
pub fn batch_id(first: &str, count: usize) -> String {
    if count == 1 {
        first.to_owned()
    } else {
        format!("{first}+{count}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_is_its_json_and_lines_split_items() {
        let one = br#"{"id":"a"}"#;
        assert_eq!(batch_items(one).collect::<Vec<_>>(), vec![&one[..]]);
        let many = b"{\"id\":\"a\"}\n{\"id\":\"b\",\"s\":\"x\\ny\"}\n\n";
        let items: Vec<&[u8]> = batch_items(many).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], br#"{"id":"b","s":"x\ny"}"#);
        assert_eq!(batch_id("a", 1), "a");
        assert_eq!(batch_id("a", 3), "a+3");
    }
}
