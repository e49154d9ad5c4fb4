//! The SKU catalogue: which terminals can be ordered, in which markets, at what price,
//! and the per-order limits. It is data (`shared/catalogue.json`), not code branches:
//! adding a terminal model or a market is an edit to that file.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The catalogue shipped with this build.
const BUILTIN: &str = include_str!("../catalogue.json");

/// One orderable terminal model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogueEntry {
    pub sku: String,
    pub name: String,
    pub unit_price_cents: u64,
}

#[derive(Debug, Deserialize)]
struct CatalogueFile {
    markets: Vec<String>,
    max_quantity_per_line: u32,
    max_lines: usize,
    skus: Vec<CatalogueEntry>,
}

/// What can be ordered and the limits an order must respect.
#[derive(Debug, Clone)]
pub struct Catalogue {
    markets: Vec<String>,
    max_quantity_per_line: u32,
    max_lines: usize,
    skus: BTreeMap<String, CatalogueEntry>,
}

/// The catalogue file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("catalogue lists SKU {0} twice")]
    DuplicateSku(String),
    #[error("catalogue must allow at least one line of at least one unit")]
    NoCapacity,
}

impl Catalogue {
    /// The catalogue compiled into this build (`shared/catalogue.json`).
    pub fn builtin() -> Result<Catalogue, CatalogueError> {
        Catalogue::from_json(BUILTIN)
    }

    /// Reads a catalogue from its JSON form.
    pub fn from_json(text: &str) -> Result<Catalogue, CatalogueError> {
        let file: CatalogueFile = serde_json::from_str(text)?;
        if file.max_lines == 0 || file.max_quantity_per_line == 0 {
            return Err(CatalogueError::NoCapacity);
        }
        let mut skus = BTreeMap::new();
        for entry in file.skus {
            if skus.contains_key(&entry.sku) {
                return Err(CatalogueError::DuplicateSku(entry.sku));
            }
            skus.insert(entry.sku.clone(), entry);
        }
        Ok(Catalogue {
            markets: file.markets,
            max_quantity_per_line: file.max_quantity_per_line,
            max_lines: file.max_lines,
            skus,
        })
    }

    /// The entry for a SKU, if the catalogue sells it.
    pub fn entry(&self, sku: &str) -> Option<&CatalogueEntry> {
        self.skus.get(sku)
    }

    /// Whether terminals can be delivered to this ISO 3166-1 alpha-2 country.
    /// What `lines` cost in cents, or the first SKU the catalogue does not list.
    pub fn price_cents(&self, lines: &[crate::order::OrderLine]) -> Result<u64, String> {
        lines.iter().try_fold(0u64, |total, line| {
            let entry = self.entry(&line.sku).ok_or_else(|| line.sku.clone())?;
            Ok(total + entry.unit_price_cents * u64::from(line.quantity))
        })
    }

    /// The currency merchants in `country` pay in (ISO 4217).
    pub fn currency(country: &str) -> &'static str {
        match country {
            "GB" => "GBP",
            _ => "EUR",
        }
    }

    pub fn serves_market(&self, country: &str) -> bool {
        self.markets.iter().any(|m| m == country)
    }

    pub fn markets(&self) -> &[String] {
        &self.markets
    }

    pub fn max_quantity_per_line(&self) -> u32 {
        self.max_quantity_per_line
    }

    pub fn max_lines(&self) -> usize {
        self.max_lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_parses_and_sells_terminals() -> Result<(), CatalogueError> {
        let catalogue = Catalogue::builtin()?;
        assert!(catalogue.entry("A920-PRO").is_some());
        assert!(catalogue.serves_market("DE"));
        assert_eq!(catalogue.max_quantity_per_line(), 50);
        Ok(())
    }

    #[test]
    fn a_sku_listed_twice_is_refused() {
        let text = r#"{"markets":["DE"],"max_quantity_per_line":5,"max_lines":2,
            "skus":[{"sku":"X","name":"x","unit_price_cents":1},{"sku":"X","name":"y","unit_price_cents":2}]}"#;
        assert!(matches!(
            Catalogue::from_json(text),
            Err(CatalogueError::DuplicateSku(sku)) if sku == "X"
        ));
    }

    #[test]
    fn a_catalogue_that_allows_nothing_is_refused() {
        let text = r#"{"markets":["DE"],"max_quantity_per_line":0,"max_lines":2,"skus":[]}"#;
        assert!(matches!(
            Catalogue::from_json(text),
            Err(CatalogueError::NoCapacity)
        ));
    }
}
