//! Full extraction of one page: items, field values, missing/required/default rules and
//! the diagnostics that explain the result.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use scraper::{ElementRef, Html};
use selextract_spec::FieldType;
use selextract_spec::Limits;
use serde_json::{Map, Value};
use url::Url;

use crate::compile::{Extractor, Field, Sel};
use crate::cost::{check_parse_cost, over_budget};
use crate::parse::parse_page;
use crate::select::{Hit, Scope, Tree};
use crate::transform::{self, Outcome};
use crate::values::{
    absolute_url, collapse_whitespace, document_base_url, element_text, image_source, inner_html,
};
use crate::xpath::XpathPage;
use crate::{Diagnostics, Extraction, MAX_MESSAGES, Page, decode_html};

impl Extractor {
    /// Full extraction of one page.
    pub fn extract(&self, page: &Page<'_>) -> Extraction {
        let (text, encoding) = decode_html(page.body, page.content_type);
        let budget = self.limits.max_extraction_steps;
        if let Err(reason) = check_parse_cost(&text, !page.rendered, budget) {
            // Refused before html5ever sees it: its tree builder is what would be slow. The
            // streaming pass is linear: its next link is kept, as `find_next` gives it.
            return Extraction {
                records: Vec::new(),
                next: self.streamed_next(&text, page).unwrap_or_default(),
                diagnostics: Diagnostics {
                    encoding: encoding.name(),
                    ..Diagnostics::default()
                },
                too_large: None,
                too_costly: Some(reason),
            };
        }
        let html = parse_page(&text, page.rendered);
        let package = (!self.xpaths.is_empty()).then(sxd_document::Package::new);
        let xpath = package
            .as_ref()
            .map(|package| XpathPage::build(&html, package.as_document(), &self.xpaths));
        let root = root_element(&html);
        let tree = Tree::new(root, xpath.as_ref(), page.rendered, budget);
        let base = BaseUrl::new(&html, page.url);
        let mut run = PageRun::new(self, &tree, &base);
        let mut records = run.records();
        // The next link gets a budget of its own, as in `find_next`, so both agree.
        let next_tree = Tree::new(root, xpath.as_ref(), page.rendered, budget);
        let next = self.next_on_tree(&next_tree, &base, &mut run.notes);
        let too_large = run.too_large.take();
        let too_costly = tree.steps.exhausted().then(|| over_budget(budget));
        if too_large.is_some() || too_costly.is_some() {
            // A page is all or nothing: partial records would look like a complete page.
            records = Vec::new();
        }
        let mut diagnostics = run.into_diagnostics();
        diagnostics.encoding = encoding.name();
        Extraction {
            records,
            next,
            diagnostics,
            too_large,
            too_costly,
        }
    }
}

/// The root `<html>` element; html5ever always makes one, but nothing here relies on it.
pub(crate) fn root_element(html: &Html) -> Option<ElementRef<'_>> {
    html.tree.root().children().find_map(ElementRef::wrap)
}

/// The document's base URL, looked up on first use: pages without link or image fields
/// never scan for `<base>`.
pub(crate) struct BaseUrl<'h> {
    html: &'h Html,
    page_url: &'h Url,
    resolved: OnceCell<Url>,
}

impl<'h> BaseUrl<'h> {
    pub(crate) fn new(html: &'h Html, page_url: &'h Url) -> Self {
        BaseUrl {
            html,
            page_url,
            resolved: OnceCell::new(),
        }
    }

    pub(crate) fn get(&self) -> &Url {
        self.resolved
            .get_or_init(|| document_base_url(self.html, self.page_url))
    }
}

/// Notes for [`Diagnostics::messages`], each said once.
#[derive(Default)]
pub(crate) struct Notes(Vec<String>);

impl Notes {
    pub(crate) fn add(&mut self, note: String) {
        if !self.0.contains(&note) {
            self.0.push(note);
        }
    }
}

/// The state of extracting one page.
struct PageRun<'e, 'h, 'x, 'd, 'r> {
    extractor: &'e Extractor,
    tree: &'r Tree<'h, 'x, 'd>,
    base: &'r BaseUrl<'h>,
    /// Reused for every field evaluation, so selection does not allocate per field.
    hits: Vec<Hit<'h>>,
    items_matched: usize,
    records_dropped: usize,
    missing: Vec<usize>,
    failures: Vec<usize>,
    notes: Notes,
    /// Bytes of JSON of the records kept so far.
    page_bytes: usize,
    /// Why this page's records are too large, once they are; extraction stops there.
    too_large: Option<String>,
}

impl<'e, 'h, 'x, 'd, 'r> PageRun<'e, 'h, 'x, 'd, 'r> {
    fn new(extractor: &'e Extractor, tree: &'r Tree<'h, 'x, 'd>, base: &'r BaseUrl<'h>) -> Self {
        let fields = extractor.fields.len();
        let mut notes = Notes::default();
        for problem in &extractor.problems {
            notes.add(problem.clone());
        }
        PageRun {
            extractor,
            tree,
            base,
            hits: Vec::new(),
            items_matched: 0,
            records_dropped: 0,
            missing: vec![0; fields],
            failures: vec![0; fields],
            notes,
            page_bytes: 0,
            too_large: None,
        }
    }

    fn limits(&self) -> &'e Limits {
        &self.extractor.limits
    }

    /// Records the first size limit this page broke.
    fn refuse(&mut self, reason: String) {
        if self.too_large.is_none() {
            self.too_large = Some(reason);
        }
    }

    fn value_too_large(&mut self, index: usize, field: &Field, bytes: usize) {
        self.refuse(format!(
            "fields[{index}] ({:?}): a value of {bytes} bytes exceeds limits.max_value_bytes ({})",
            field.name,
            self.limits().max_value_bytes
        ));
    }

    /// Counts `record` against the record and page limits.
    fn weigh_record(&mut self, number: usize, record: &Map<String, Value>) {
        let bytes = json_length(record);
        let limits = self.limits();
        if bytes > limits.max_record_bytes {
            self.refuse(format!(
                "record {number} of the page: {bytes} bytes of JSON exceed limits.max_record_bytes ({})",
                limits.max_record_bytes
            ));
            return;
        }
        self.page_bytes = self.page_bytes.saturating_add(bytes);
        if self.page_bytes > limits.max_page_records_bytes {
            self.refuse(format!(
                "the page's records: {} bytes of JSON so far exceed limits.max_page_records_bytes ({})",
                self.page_bytes, limits.max_page_records_bytes
            ));
        }
    }

    fn records(&mut self) -> Vec<Map<String, Value>> {
        let scopes = self.item_scopes();
        self.items_matched = scopes.len();
        let mut records = Vec::with_capacity(scopes.len());
        for (position, scope) in scopes.into_iter().enumerate() {
            if let Some(record) = self.record(scope) {
                if self.too_large.is_none() {
                    self.weigh_record(position + 1, &record);
                }
                records.push(record);
            }
            if self.too_large.is_some() || self.tree.steps.exhausted() {
                break;
            }
        }
        records
    }

    fn item_scopes(&mut self) -> Vec<Scope<'h>> {
        let Some(item) = &self.extractor.item else {
            return vec![Scope::Document];
        };
        let mut hits = Vec::new();
        if let Err(error) = self.tree.select(item, Scope::Document, false, &mut hits) {
            self.notes
                .add(format!("item_selector: XPath evaluation failed: {error}"));
        }
        if self.tree.steps.exhausted() {
            return Vec::new();
        }
        let total = hits.len();
        let scopes: Vec<Scope<'h>> = hits
            .into_iter()
            .filter_map(|hit| match hit {
                Hit::Element(element) => Some(Scope::Element(element)),
                _ => None,
            })
            .collect();
        if scopes.len() < total {
            self.notes.add(format!(
                "item_selector: {} of {total} results are not elements and were ignored",
                total - scopes.len()
            ));
        }
        scopes
    }

    /// One record, or `None` when a required field is missing (counted).
    fn record(&mut self, scope: Scope<'h>) -> Option<Map<String, Value>> {
        let extractor = self.extractor;
        let mut record = Map::with_capacity(extractor.fields.len());
        let mut complete = true;
        for (index, field) in extractor.fields.iter().enumerate() {
            if self.tree.steps.exhausted() {
                return None;
            }
            match self.field_value(index, field, scope) {
                Some(value) => {
                    record.insert(field.name.clone(), value);
                }
                None => {
                    self.missing[index] += 1;
                    if field.required {
                        complete = false;
                    } else {
                        record.insert(field.name.clone(), default_value(field));
                    }
                }
            }
        }
        if complete {
            Some(record)
        } else {
            self.records_dropped += 1;
            None
        }
    }

    /// The field's value in `scope`, `None` when missing.
    fn field_value(&mut self, index: usize, field: &Field, scope: Scope<'h>) -> Option<Value> {
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        if let Err(error) = self
            .tree
            .select(&field.sel, scope, !field.multiple, &mut hits)
        {
            self.notes.add(format!(
                "field {:?}: XPath evaluation failed: {error}",
                field.name
            ));
        }
        let value = if field.multiple {
            let mut values = Vec::new();
            let mut bytes = 0usize;
            for hit in hits.drain(..) {
                if let Some(value) = self.hit_value(index, field, hit) {
                    bytes = bytes.saturating_add(json_length(&value));
                    values.push(value);
                }
                if bytes > self.limits().max_value_bytes {
                    self.value_too_large(index, field, bytes);
                    break;
                }
            }
            (!values.is_empty()).then_some(Value::Array(values))
        } else {
            hits.drain(..)
                .next()
                .and_then(|hit| self.hit_value(index, field, hit))
        };
        self.hits = hits;
        value
    }

    /// The transformed value of one hit, `None` when it is empty, a transform dropped it or
    /// it is too large (then the page is refused).
    fn hit_value(&mut self, index: usize, field: &Field, hit: Hit<'h>) -> Option<Value> {
        if self.too_large.is_some() || self.tree.steps.exhausted() {
            return None;
        }
        let text = match hit {
            Hit::Element(element) => self.element_value(field, element),
            Hit::Text(text) => self.string_value(field, text),
            Hit::Number(number) if field.steps.is_empty() => {
                return self.transformed(index, field, number_value(number)?);
            }
            Hit::Number(number) => Ok(Some(number_value(number)?.to_string())),
            Hit::Bool(flag) => return self.transformed(index, field, Value::Bool(flag)),
        };
        match text {
            Ok(text) => self.transformed(index, field, Value::String(text?)),
            Err(bytes) => {
                self.value_too_large(index, field, bytes);
                None
            }
        }
    }

    /// `raw` through the field's transforms, within `limits.max_value_bytes`.
    fn transformed(&mut self, index: usize, field: &Field, raw: Value) -> Option<Value> {
        let max_bytes = self.limits().max_value_bytes;
        let outcome = match &raw {
            Value::String(text) if text.len() > max_bytes => Outcome::TooLarge(text.len()),
            _ => transform::apply(&field.steps, raw, max_bytes),
        };
        match outcome {
            Outcome::Value(Value::String(text)) if text.is_empty() => None,
            Outcome::Value(value) => Some(value),
            Outcome::Missing => None,
            Outcome::Failed => {
                self.failures[index] += 1;
                Some(Value::Null)
            }
            Outcome::TooLarge(bytes) => {
                self.value_too_large(index, field, bytes);
                None
            }
        }
    }

    /// An element's value for the field's type; `Ok(None)` when it has none, `Err` with
    /// the length when it is longer than `limits.max_value_bytes` (never copied whole).
    fn element_value(
        &self,
        field: &Field,
        element: ElementRef<'h>,
    ) -> Result<Option<String>, usize> {
        let max_bytes = self.limits().max_value_bytes;
        let scripting = self.tree.scripting;
        let value = match field.kind {
            FieldType::Text => element_text(element, scripting, max_bytes, &self.tree.steps)?,
            FieldType::Html => inner_html(element, scripting, max_bytes, &self.tree.steps)?,
            FieldType::Attribute => {
                let attribute = field.attribute.as_deref();
                match attribute.and_then(|name| element.attr(name)) {
                    Some(value) => within(value, max_bytes)?.to_owned(),
                    None => return Ok(None),
                }
            }
            FieldType::Link => match element.attr("href") {
                Some(href) => absolute_url(self.base.get(), within(href, max_bytes)?),
                None => return Ok(None),
            },
            FieldType::Image => match image_source(element) {
                Some(source) => absolute_url(self.base.get(), within(source, max_bytes)?),
                None => return Ok(None),
            },
        };
        Ok((!value.trim().is_empty()).then_some(value))
    }

    /// A value XPath produced as text (attribute, text node, computed string).
    fn string_value(&self, field: &Field, text: String) -> Result<Option<String>, usize> {
        within(&text, self.limits().max_value_bytes)?;
        let value = match field.kind {
            FieldType::Text => collapse_whitespace(&text),
            FieldType::Html | FieldType::Attribute => text,
            FieldType::Link | FieldType::Image => absolute_url(self.base.get(), &text),
        };
        Ok((!value.trim().is_empty()).then_some(value))
    }

    fn into_diagnostics(self) -> Diagnostics {
        let fields = &self.extractor.fields;
        let per_field = |counts: &[usize]| -> BTreeMap<String, usize> {
            fields
                .iter()
                .zip(counts)
                .filter(|(_, count)| **count > 0)
                .map(|(field, count)| (field.name.clone(), *count))
                .collect()
        };
        let fields_missing = per_field(&self.missing);
        let transform_failures = per_field(&self.failures);
        let mut messages = self.notes.0;
        if self.extractor.item.is_some() && self.items_matched == 0 {
            messages.push("item_selector matched no element".to_owned());
        }
        for (field, count) in &fields_missing {
            messages.push(format!(
                "field {field:?} was missing in {count} of {} items",
                self.items_matched
            ));
        }
        if self.records_dropped > 0 {
            messages.push(format!(
                "{} of {} records dropped because a required field was missing",
                self.records_dropped, self.items_matched
            ));
        }
        for (field, count) in &transform_failures {
            messages.push(format!(
                "field {field:?}: {count} values could not be converted and became null"
            ));
        }
        bound_messages(&mut messages);
        Diagnostics {
            encoding: "",
            items_matched: self.items_matched,
            records_dropped_missing_required: self.records_dropped,
            fields_missing,
            transform_failures,
            messages,
        }
    }
}

fn default_value(field: &Field) -> Value {
    match &field.default {
        Some(default) => default.clone(),
        None if field.multiple => Value::Array(Vec::new()),
        None => Value::Null,
    }
}

/// An XPath number as JSON: whole numbers as integers (`count(//a)` → `12`, not `12.0`);
/// NaN (`number("abc")`) and infinities are not values.
fn number_value(number: f64) -> Option<Value> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if number.fract() == 0.0 && number.abs() < EXACT_INTEGER_LIMIT {
        Some(Value::from(number as i64))
    } else {
        serde_json::Number::from_f64(number).map(Value::Number)
    }
}

/// `text`, or its length when it is longer than `max_bytes`.
fn within(text: &str, max_bytes: usize) -> Result<&str, usize> {
    if text.len() > max_bytes {
        Err(text.len())
    } else {
        Ok(text)
    }
}

/// Bytes of `value` as compact JSON, counted without building the text.
fn json_length<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    // Serialising JSON values into a writer that cannot fail does not fail.
    if serde_json::to_writer(&mut counter, value).is_err() {
        return usize::MAX;
    }
    counter.0
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bound_messages(messages: &mut Vec<String>) {
    if messages.len() > MAX_MESSAGES {
        let dropped = messages.len() - (MAX_MESSAGES - 1);
        messages.truncate(MAX_MESSAGES - 1);
        messages.push(format!("… and {dropped} more notes"));
    }
}

/// Whether the selector is XPath, so that callers can skip building the mirror.
pub(crate) fn is_xpath(sel: Option<&Sel>) -> bool {
    matches!(sel, Some(Sel::Xpath(_)))
}
