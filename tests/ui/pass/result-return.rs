use aiomp::remote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum ParseError {
    Empty,
    NotANumber(String),
}

#[remote]
async fn parse(text: String) -> Result<u64, ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    text.parse().map_err(|_| ParseError::NotANumber(text))
}

#[remote]
fn parse_plain(text: String) -> Result<u64, String> {
    text.parse().map_err(|e| format!("{e}"))
}

fn main() {
    let _future = parse(String::from("7"));
    assert_eq!(parse_plain(String::from("7")), Ok(7));
}
