//! An order: parsed from a request into types that only hold valid values (parse, don't
//! validate), reporting every problem at once with its field path.
//!
//! Stored orders were parsed on the way in; activities that must re-check an order against
//! today's catalogue call [`Order::parse`] again on its JSON form.

use crate::catalogue::Catalogue;
use crate::validation::{element, field, Collector, Problems};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// The largest request body the API reads; anything longer is refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const MAX_TEXT_CHARS: usize = 100;

/// An order's id: `ord-` and 32 hex digits. It is also the execution name, so it fits
/// Step Functions' 80-character `[A-Za-z0-9-_]` limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    /// A new, random order id.
    pub fn generate() -> OrderId {
        OrderId(format!("ord-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The id in `text`, if it has the shape of one.
    pub fn parse(text: &str) -> Option<OrderId> {
        let hex = text.strip_prefix("ord-")?;
        let valid = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| OrderId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an order is for; decides which steps the workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OrderKind {
    /// A merchant's first terminals.
    NewMerchant,
    /// More terminals for an existing merchant.
    AdditionalDevices,
    /// Faulty terminals (by serial) swapped for new ones, free under warranty.
    Replacement,
}

impl OrderKind {
    /// Every kind, in the order of the declaration.
    pub const ALL: &'static [OrderKind] = <OrderKind as strum::VariantArray>::VARIANTS;

    /// The kind as requested and stored: `new_merchant`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(text: &str) -> Option<OrderKind> {
        text.parse().ok()
    }
}

/// One line of an order: a catalogue SKU and how many terminals of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
}

/// Where the terminals go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, one of the catalogue's markets.
    pub country: String,
}

/// A valid order request. Only [`Order::parse`] builds one from untrusted input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub kind: OrderKind,
    pub merchant_id: String,
    pub lines: Vec<OrderLine>,
    pub delivery_address: DeliveryAddress,
    /// Serials of the faulty terminals; only (and always) on replacement orders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_serials: Vec<String>,
}

impl Order {
    /// Parses a request body. Malformed JSON, a body over [`MAX_BODY_BYTES`] and every
    /// rule the order breaks come back as problems, all at once.
    pub fn parse_json(body: &[u8], catalogue: &Catalogue) -> Result<Order, Problems> {
        let mut problems = Collector::new();
        if body.len() > MAX_BODY_BYTES {
            problems.push(
                "$",
                format!(
                    "body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                    body.len()
                ),
            );
            return problems.finish(None);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            problems.push("$", "body is empty; send the order as a JSON object");
            return problems.finish(None);
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => Order::parse(&value, catalogue),
            Err(error) => {
                problems.push("$", format!("malformed JSON: {error}"));
                problems.finish(None)
            }
        }
    }

    /// Parses an order from its JSON form, reporting every problem with its path.
    pub fn parse(value: &Value, catalogue: &Catalogue) -> Result<Order, Problems> {
        let mut problems = Collector::new();
        let Some(root) = value.as_object() else {
            problems.push(
                "$",
                format!("must be a JSON object, not {}", kind_of(value)),
            );
            return problems.finish(None);
        };
        for key in root.keys() {
            if !matches!(
                key.as_str(),
                "kind" | "merchant_id" | "lines" | "delivery_address" | "replace_serials"
            ) {
                problems.push(key.clone(), "unknown field");
            }
        }

        let kind = match required(root, "", "kind", &mut problems).map(|v| (v, v.as_str())) {
            Some((_, Some(text))) => OrderKind::parse(text).or_else(|| {
                problems.push(
                    "kind",
                    format!(
                        "must be one of new_merchant, additional_devices, replacement (got {text:?})"
                    ),
                );
                None
            }),
            Some((other, None)) => {
                problems.push("kind", format!("must be a string, not {}", kind_of(other)));
                None
            }
            None => None,
        };
        let merchant_id = required(root, "", "merchant_id", &mut problems)
            .and_then(|v| parse_merchant_id(v, &mut problems));
        let lines = required(root, "", "lines", &mut problems)
            .and_then(|v| parse_lines(v, catalogue, &mut problems));
        let delivery_address = required(root, "", "delivery_address", &mut problems)
            .and_then(|v| parse_address(v, catalogue, &mut problems));
        let replace_serials = parse_serials(
            kind,
            root.get("replace_serials"),
            lines.as_deref(),
            &mut problems,
        );

        let order = match (kind, merchant_id, lines, delivery_address, replace_serials) {
            (Some(kind), Some(merchant_id), Some(lines), Some(delivery_address), Some(serials)) => {
                Some(Order {
                    kind,
                    merchant_id,
                    lines,
                    delivery_address,
                    replace_serials: serials,
                })
            }
            _ => None,
        };
        problems.finish(order)
    }

    /// How many terminals the order ships.
    pub fn total_quantity(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }

    /// The order's JSON form, as parsed by [`Order::parse`].
    pub fn to_json(&self) -> Value {
        // Serializing plain strings, numbers and vectors cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A valid `new_merchant` request for `merchant_id` (two portable terminals and a PIN pad
/// to Berlin): what the README shows, the demo places and tests start from.
pub fn example_request(merchant_id: &str) -> Value {
    serde_json::json!({
        "kind": "new_merchant",
        "merchant_id": merchant_id,
        "lines": [{"sku": "A920-PRO", "quantity": 2}, {"sku": "P400-PLUS", "quantity": 1}],
        "delivery_address": {
            "name": "Café Blau", "line1": "Torstraße 1", "city": "Berlin",
            "postal_code": "10119", "country": "DE"
        }
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    name: &str,
    problems: &mut Collector,
) -> Option<&'a Value> {
    match object.get(name) {
        None | Some(Value::Null) => {
            problems.push(field(parent, name), "is required");
            None
        }
        Some(value) => Some(value),
    }
}

/// A non-empty, trimmed, printable string of at most `max` characters.
fn text(value: &Value, path: &str, max: usize, problems: &mut Collector) -> Option<String> {
    let Some(raw) = value.as_str() else {
        problems.push(path, format!("must be a string, not {}", kind_of(value)));
        return None;
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        problems.push(path, "must not be empty");
        return None;
    }
    if trimmed.chars().count() > max {
        problems.push(path, format!("must be at most {max} characters"));
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        problems.push(path, "must not contain control characters");
        return None;
    }
    // Bidi overrides, zero-width characters and the like change how a text reads (or
    // what a label prints) without being seen.
    if let Some(format) = trimmed.chars().find(|c| {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        c.general_category() == GeneralCategory::Format
    }) {
        problems.push(
            path,
            format!(
                "must not contain invisible format characters (found U+{:04X})",
                u32::from(format)
            ),
        );
        return None;
    }
    Some(trimmed.to_owned())
}

fn parse_merchant_id(value: &Value, problems: &mut Collector) -> Option<String> {
    let id = text(value, "merchant_id", 64, problems)?;
    let valid = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        problems.push(
            "merchant_id",
            "must contain only letters, digits, '-' and '_'",
        );
        return None;
    }
    Some(id)
}

fn parse_lines(
    value: &Value,
    catalogue: &Catalogue,
    problems: &mut Collector,
) -> Option<Vec<OrderLine>> {
    let Some(items) = value.as_array() else {
        problems.push("lines", format!("must be an array, not {}", kind_of(value)));
        return None;
    };
    if items.is_empty() {
        problems.push("lines", "must have at least one line");
        return None;
    }
    if items.len() > catalogue.max_lines() {
        problems.push(
            "lines",
            format!("must have at most {} lines", catalogue.max_lines()),
        );
        return None;
    }
    let before = problems.len();
    let mut lines = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let path = element("lines", index);
        let Some(object) = item.as_object() else {
            problems.push(path, format!("must be an object, not {}", kind_of(item)));
            continue;
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "sku" | "quantity") {
                problems.push(field(&path, key), "unknown field");
            }
        }
        let sku = required(object, &path, "sku", problems).and_then(|v| {
            let sku_path = field(&path, "sku");
            let sku = text(v, &sku_path, 32, problems)?;
            if catalogue.entry(&sku).is_none() {
                problems.push(sku_path, format!("unknown SKU {sku:?}"));
                return None;
            }
            if !seen.insert(sku.clone()) {
                problems.push(
                    sku_path,
                    format!(
                        "SKU {sku:?} is on an earlier line; put its whole quantity on one line"
                    ),
                );
                return None;
            }
            Some(sku)
        });
        let quantity = required(object, &path, "quantity", problems)
            .and_then(|v| parse_quantity(v, &field(&path, "quantity"), catalogue, problems));
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            lines.push(OrderLine { sku, quantity });
        }
    }
    (problems.len() == before).then_some(lines)
}

fn parse_quantity(
    value: &Value,
    path: &str,
    catalogue: &Catalogue,
    problems: &mut Collector,
) -> Option<u32> {
    let max = catalogue.max_quantity_per_line();
    let range = format!("must be between 1 and {max}");
    match value {
        Value::Number(number) => match number.as_u64() {
            Some(n) if (1..=u64::from(max)).contains(&n) => u32::try_from(n).ok(),
            Some(_) => {
                problems.push(path, range);
                None
            }
            None if number.as_i64().is_some() => {
                problems.push(path, range);
                None
            }
            None => {
                problems.push(path, format!("must be a whole number ({range})"));
                None
            }
        },
        other => {
            problems.push(path, format!("must be a number, not {}", kind_of(other)));
            None
        }
    }
}

fn parse_address(
    value: &Value,
    catalogue: &Catalogue,
    problems: &mut Collector,
) -> Option<DeliveryAddress> {
    const PATH: &str = "delivery_address";
    let Some(object) = value.as_object() else {
        problems.push(PATH, format!("must be an object, not {}", kind_of(value)));
        return None;
    };
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "name" | "line1" | "line2" | "city" | "postal_code" | "country"
        ) {
            problems.push(field(PATH, key), "unknown field");
        }
    }
    let line = |name: &str, problems: &mut Collector| {
        required(object, PATH, name, problems)
            .and_then(|v| text(v, &field(PATH, name), MAX_TEXT_CHARS, problems))
    };
    let name = line("name", problems);
    let line1 = line("line1", problems);
    let city = line("city", problems);
    let line2 = match object.get("line2") {
        None | Some(Value::Null) => Some(None),
        Some(v) => text(v, &field(PATH, "line2"), MAX_TEXT_CHARS, problems).map(Some),
    };
    let postal_code = required(object, PATH, "postal_code", problems).and_then(|v| {
        let path = field(PATH, "postal_code");
        let code = text(v, &path, 16, problems)?;
        let valid = code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        if !valid {
            problems.push(path, "must contain only letters, digits, spaces and '-'");
            return None;
        }
        Some(code)
    });
    let country = required(object, PATH, "country", problems).and_then(|v| {
        let path = field(PATH, "country");
        let country = text(v, &path, 2, problems)?;
        if !catalogue.serves_market(&country) {
            problems.push(
                path,
                format!(
                    "we do not deliver to {country:?}; markets: {}",
                    catalogue.markets().join(", ")
                ),
            );
            return None;
        }
        Some(country)
    });
    Some(DeliveryAddress {
        name: name?,
        line1: line1?,
        line2: line2?,
        city: city?,
        postal_code: postal_code?,
        country: country?,
    })
}

fn parse_serials(
    kind: Option<OrderKind>,
    value: Option<&Value>,
    lines: Option<&[OrderLine]>,
    problems: &mut Collector,
) -> Option<Vec<String>> {
    const PATH: &str = "replace_serials";
    let value = value.filter(|v| !v.is_null());
    match (kind, value) {
        (Some(OrderKind::Replacement), None) => {
            problems.push(
                PATH,
                "is required for replacement orders: the serials of the faulty terminals",
            );
            None
        }
        (Some(OrderKind::Replacement), Some(value)) => {
            let Some(items) = value.as_array() else {
                problems.push(PATH, format!("must be an array, not {}", kind_of(value)));
                return None;
            };
            if items.is_empty() {
                problems.push(PATH, "must list at least one serial");
                return None;
            }
            let before = problems.len();
            let mut serials = Vec::with_capacity(items.len());
            let mut seen = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                let path = element(PATH, index);
                let Some(serial) = text(item, &path, 32, problems) else {
                    continue;
                };
                let valid = serial.len() >= 6
                    && serial
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    problems.push(path, "must be 6 to 32 upper-case letters, digits or '-'");
                } else if !seen.insert(serial.clone()) {
                    problems.push(path, format!("serial {serial:?} is listed twice"));
                } else {
                    serials.push(serial);
                }
            }
            if let Some(lines) = lines {
                let terminals: u32 = lines.iter().map(|l| l.quantity).sum();
                if usize::try_from(terminals).ok() != Some(items.len()) {
                    problems.push(
                        PATH,
                        format!(
                            "{} serial(s) given for {terminals} replacement terminal(s); give one serial per terminal",
                            items.len()
                        ),
                    );
                }
            }
            (problems.len() == before).then_some(serials)
        }
        (_, Some(_)) => {
            problems.push(PATH, "is only allowed on replacement orders");
            None
        }
        (_, None) => Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalogue() -> Catalogue {
        match Catalogue::builtin() {
            Ok(catalogue) => catalogue,
            Err(error) => panic!("builtin catalogue: {error}"),
        }
    }

    fn valid_request() -> Value {
        example_request("m-1001")
    }

    /// The valid request as a replacement, with `serials` as its `replace_serials` (none
    /// when `None`).
    fn replacement_request(serials: Option<Value>) -> Value {
        let mut request = valid_request();
        request["kind"] = json!("replacement");
        if let Some(serials) = serials {
            request["replace_serials"] = serials;
        }
        request
    }

    fn problems_of(value: Value) -> Vec<String> {
        match Order::parse(&value, &catalogue()) {
            Ok(order) => panic!("expected problems, parsed {order:?}"),
            Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_valid_new_merchant_order_parses() {
        let order = Order::parse(&valid_request(), &catalogue());
        let order = order.as_ref().map(|o| (o.kind, o.total_quantity()));
        assert_eq!(order, Ok((OrderKind::NewMerchant, 3)));
    }

    #[test]
    fn an_order_survives_its_own_json_form() {
        let order = Order::parse(&valid_request(), &catalogue());
        let again = order
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|o| Order::parse(&o.to_json(), &catalogue()));
        assert_eq!(order, again);
    }

    #[test]
    fn text_fields_are_trimmed() {
        let mut request = valid_request();
        request["merchant_id"] = json!("  m-1001 ");
        let merchant = Order::parse(&request, &catalogue()).map(|o| o.merchant_id);
        assert_eq!(merchant, Ok("m-1001".to_owned()));
    }

    #[test]
    fn a_quantity_out_of_range_names_its_line() {
        let mut request = valid_request();
        request["lines"][1]["quantity"] = json!(51);
        assert_eq!(
            problems_of(request),
            ["lines[1].quantity: must be between 1 and 50"]
        );
    }

    #[test]
    fn quantity_zero_negative_fractional_and_text_are_all_refused() {
        let mut request = valid_request();
        request["lines"] = json!([
            {"sku": "A920-PRO", "quantity": 0},
            {"sku": "A80", "quantity": -3},
            {"sku": "S1F2", "quantity": 1.5},
            {"sku": "V400M", "quantity": "2"}
        ]);
        assert_eq!(
            problems_of(request),
            [
                "lines[0].quantity: must be between 1 and 50",
                "lines[1].quantity: must be between 1 and 50",
                "lines[2].quantity: must be a whole number (must be between 1 and 50)",
                "lines[3].quantity: must be a number, not a string",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let request = json!({
            "kind": "express",
            "lines": [{"sku": "NOPE", "quantity": 1}],
            "delivery_address": {"name": "", "line1": "x", "city": "y", "postal_code": "1", "country": "US"},
            "colour": "red"
        });
        assert_eq!(
            problems_of(request),
            [
                "colour: unknown field",
                "kind: must be one of new_merchant, additional_devices, replacement (got \"express\")",
                "merchant_id: is required",
                "lines[0].sku: unknown SKU \"NOPE\"",
                "delivery_address.name: must not be empty",
                "delivery_address.country: we do not deliver to \"US\"; markets: AT, BE, DE, ES, FR, GB, IE, IT, NL, PT",
            ]
        );
    }

    #[test]
    fn a_name_or_address_with_an_invisible_format_character_is_refused_naming_it() {
        // A right-to-left override in the name, a zero-width space in the street: both
        // would reach the courier's label reading otherwise than they look.
        let mut request = valid_request();
        request["delivery_address"]["name"] = json!("Caf\u{202E}e Blau");
        request["delivery_address"]["line1"] = json!("Tor\u{200B}straße 1");
        assert_eq!(
            problems_of(request),
            [
                "delivery_address.name: must not contain invisible format characters (found U+202E)",
                "delivery_address.line1: must not contain invisible format characters (found U+200B)",
            ]
        );
        // Letters of any script stay welcome.
        let mut request = valid_request();
        request["delivery_address"]["name"] = json!("Ελληνικό Καφέ – שלום");
        let parsed = Order::parse(&request, &catalogue()).map(|o| o.delivery_address.name);
        assert_eq!(parsed.ok().as_deref(), Some("Ελληνικό Καφέ – שלום"));
    }

    #[test]
    fn missing_address_fields_are_each_named() {
        let mut request = valid_request();
        request["delivery_address"] = json!({"name": "Café Blau"});
        assert_eq!(
            problems_of(request),
            [
                "delivery_address.line1: is required",
                "delivery_address.city: is required",
                "delivery_address.postal_code: is required",
                "delivery_address.country: is required",
            ]
        );
    }

    #[test]
    fn wrong_types_are_named_with_what_was_sent() {
        let request = json!({
            "kind": 3, "merchant_id": ["m"], "lines": {"sku": "A80"},
            "delivery_address": "Berlin"
        });
        assert_eq!(
            problems_of(request),
            [
                "kind: must be a string, not a number",
                "merchant_id: must be a string, not an array",
                "lines: must be an array, not an object",
                "delivery_address: must be an object, not a string",
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        assert_eq!(
            problems_of(json!([1, 2])),
            ["$: must be a JSON object, not an array"]
        );
    }

    #[test]
    fn malformed_json_is_reported_with_its_position() {
        let problems = Order::parse_json(b"{\"kind\": ", &catalogue())
            .err()
            .map(|p| p.to_string());
        assert_eq!(
            problems.as_deref(),
            Some("1 problem(s): $: malformed JSON: EOF while parsing a value at line 1 column 9")
        );
    }

    #[test]
    fn an_empty_body_is_refused() {
        let problems = Order::parse_json(b"  ", &catalogue()).err().map(|p| p.0);
        assert_eq!(
            problems.map(|p| p[0].message.clone()).as_deref(),
            Some("body is empty; send the order as a JSON object")
        );
    }

    #[test]
    fn an_oversized_body_is_refused_unread() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let problems = Order::parse_json(&body, &catalogue()).err().map(|p| p.0);
        assert_eq!(
            problems.map(|p| p[0].message.clone()).as_deref(),
            Some("body is 65537 bytes; at most 65536 are accepted")
        );
    }

    #[test]
    fn the_same_sku_on_two_lines_is_refused() {
        let mut request = valid_request();
        request["lines"] = json!([{"sku": "A80", "quantity": 1}, {"sku": "A80", "quantity": 2}]);
        assert_eq!(
            problems_of(request),
            ["lines[1].sku: SKU \"A80\" is on an earlier line; put its whole quantity on one line"]
        );
    }

    #[test]
    fn no_lines_and_too_many_lines_are_refused() {
        let mut request = valid_request();
        request["lines"] = json!([]);
        assert_eq!(
            problems_of(request.clone()),
            ["lines: must have at least one line"]
        );
        request["lines"] = Value::Array(vec![json!({"sku": "A80", "quantity": 1}); 21]);
        assert_eq!(problems_of(request), ["lines: must have at most 20 lines"]);
    }

    #[test]
    fn a_replacement_without_serials_is_refused() {
        assert_eq!(
            problems_of(replacement_request(None)),
            ["replace_serials: is required for replacement orders: the serials of the faulty terminals"]
        );
    }

    #[test]
    fn a_replacement_needs_one_serial_per_terminal() {
        let twice_and_bad = json!(["SN-000001", "SN-000001", "bad"]);
        assert_eq!(
            problems_of(replacement_request(Some(twice_and_bad))),
            [
                "replace_serials[1]: serial \"SN-000001\" is listed twice",
                "replace_serials[2]: must be 6 to 32 upper-case letters, digits or '-'",
            ]
        );
        let one = json!(["SN-000001"]);
        assert_eq!(
            problems_of(replacement_request(Some(one))),
            ["replace_serials: 1 serial(s) given for 3 replacement terminal(s); give one serial per terminal"]
        );
    }

    #[test]
    fn a_valid_replacement_parses_with_its_serials() {
        let three = json!(["SN-000001", "SN-000002", "SN-000003"]);
        let request = replacement_request(Some(three));
        let serials = Order::parse(&request, &catalogue()).map(|o| o.replace_serials.len());
        assert_eq!(serials, Ok(3));
    }

    #[test]
    fn serials_are_refused_on_other_kinds() {
        let mut request = valid_request();
        request["replace_serials"] = json!(["SN-000001"]);
        assert_eq!(
            problems_of(request),
            ["replace_serials: is only allowed on replacement orders"]
        );
    }

    #[test]
    fn order_ids_have_one_shape() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()), Some(id.clone()));
        assert!(id.as_str().len() <= 80);
        assert_eq!(OrderId::parse("ord-XYZ"), None);
        assert_eq!(OrderId::parse("../etc/passwd"), None);
    }
}
