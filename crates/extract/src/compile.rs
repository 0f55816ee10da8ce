//! Turning a task spec into an [`Extractor`]: every selector, regex and format is compiled
//! once here, never per page.

use selextract_spec::{
    FieldSpec, FieldType, Limits, TaskSpec, ValidatedSpec, scan_selector, selector_is_xpath,
    xpath_namespace_prefix,
};
use serde_json::Value;

use crate::css::Css;
use crate::next::QuickNext;
use crate::transform::Step;

/// A compiled task spec: applies to any number of pages, from any number of threads.
///
/// `Send + Sync` and immutable; share it in an `Arc`. XPath expressions are kept as
/// checked source text because `sxd-xpath`'s compiled form is neither `Send` nor `Sync`;
/// they are compiled again per page (microseconds) only for specs that use XPath.
#[derive(Debug)]
pub struct Extractor {
    pub(crate) item: Option<Sel>,
    pub(crate) fields: Vec<Field>,
    pub(crate) next: Option<Sel>,
    pub(crate) stop: Option<Sel>,
    /// Sources of the XPath expressions; [`Sel::Xpath`] indexes into this.
    pub(crate) xpaths: Vec<String>,
    /// Parts of a validated spec that this crate could not compile; each page reports them.
    pub(crate) problems: Vec<String>,
    /// The streaming plan for [`Extractor::find_next`], when the pagination selectors allow.
    pub(crate) quick_next: Option<QuickNext>,
    /// The size limits of values and records (and those the spec was compiled within).
    pub(crate) limits: Limits,
}

/// One compiled selector.
#[derive(Debug)]
pub(crate) enum Sel {
    Css(Css),
    Xpath(usize),
    /// A selector of a validated spec that did not compile here: matches nothing.
    Never,
}

/// One compiled field.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) sel: Sel,
    pub(crate) kind: FieldType,
    pub(crate) attribute: Option<String>,
    pub(crate) multiple: bool,
    pub(crate) required: bool,
    pub(crate) default: Option<Value>,
    pub(crate) steps: Vec<Step>,
}

/// A part of a task spec that cannot be compiled; `path` is its JSON path in the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("{path}: invalid CSS selector: {message}")]
    InvalidCss { path: String, message: String },
    #[error("{path}: invalid XPath expression: {message}")]
    InvalidXpath { path: String, message: String },
    #[error("{path}: invalid regular expression: {message}")]
    InvalidRegex { path: String, message: String },
    #[error("{path}: invalid date format: {message}")]
    InvalidDateFormat { path: String, message: String },
    #[error("{path}: required when type is \"attribute\" and the selector is CSS")]
    MissingAttribute { path: String },
    /// A selector too long or too deep, or too many transform steps: refused before any
    /// parser sees it.
    #[error("{path}: {message}")]
    OverLimit { path: String, message: String },
}

impl CompileError {
    /// The JSON path of the offending value, e.g. `fields[2].selector`.
    pub fn path(&self) -> &str {
        match self {
            CompileError::InvalidCss { path, .. }
            | CompileError::InvalidXpath { path, .. }
            | CompileError::InvalidRegex { path, .. }
            | CompileError::InvalidDateFormat { path, .. }
            | CompileError::OverLimit { path, .. }
            | CompileError::MissingAttribute { path } => path,
        }
    }
}

impl Extractor {
    /// Compile a spec. Infallible for a validated spec (validation already compiled every
    /// selector); for an unvalidated TaskSpec return Err naming the field path. Selectors,
    /// transforms and values are held to [`Limits::default`].
    pub fn new(spec: &TaskSpec) -> Result<Extractor, CompileError> {
        let (extractor, mut errors) = compile(spec, Limits::default());
        if errors.is_empty() {
            Ok(extractor)
        } else {
            Err(errors.swap_remove(0))
        }
    }

    /// Compile a validated spec. Anything validation accepted but this crate cannot
    /// compile (a date format chrono rejects) does not abort the run: that part matches or
    /// converts nothing, and every page's diagnostics say so.
    /// Values and records are held to the limits the spec was validated against.
    pub fn from_validated(spec: &ValidatedSpec) -> Extractor {
        let (mut extractor, errors) = compile(spec.spec(), *spec.limits());
        extractor.problems = errors
            .iter()
            .map(|error| format!("{error} (it cannot run: its values are missing or null)"))
            .collect();
        extractor
    }
}

fn compile(spec: &TaskSpec, limits: Limits) -> (Extractor, Vec<CompileError>) {
    let mut compiler = Compiler {
        xpaths: Vec::new(),
        errors: Vec::new(),
        limits,
    };
    let item = spec.item_selector.as_deref().map(|selector| {
        let is_xpath = selector_is_xpath(selector, spec.item_selector_type);
        compiler.selector(selector, is_xpath, false, "item_selector")
    });
    let in_item = item.is_some();
    let fields = spec
        .fields
        .iter()
        .enumerate()
        .map(|(index, field)| compiler.field(field, index, in_item))
        .collect();
    let pagination = spec.pagination.as_ref();
    let next_source = pagination.and_then(|p| {
        p.next_selector
            .as_deref()
            .map(|s| (s, p.next_selector_type))
    });
    let next = next_source.map(|(selector, explicit)| {
        compiler.selector(
            selector,
            selector_is_xpath(selector, explicit),
            false,
            "pagination.next_selector",
        )
    });
    let stop_source = pagination.and_then(|p| p.stop_selector.as_deref());
    let stop = stop_source.map(|selector| {
        compiler.selector(
            selector,
            selector_is_xpath(selector, None),
            false,
            "pagination.stop_selector",
        )
    });
    let quick_next = QuickNext::plan(
        next.as_ref().zip(next_source.map(|(selector, _)| selector)),
        stop.as_ref().zip(stop_source),
    );
    let extractor = Extractor {
        item,
        fields,
        next,
        stop,
        xpaths: compiler.xpaths,
        problems: Vec::new(),
        quick_next,
        limits,
    };
    (extractor, compiler.errors)
}

struct Compiler {
    xpaths: Vec<String>,
    errors: Vec<CompileError>,
    limits: Limits,
}

impl Compiler {
    fn field(&mut self, field: &FieldSpec, index: usize, in_item: bool) -> Field {
        let path = format!("fields[{index}]");
        let is_xpath = selector_is_xpath(&field.selector, Some(field.selector_type));
        let sel = self.selector(
            &field.selector,
            is_xpath,
            in_item,
            &format!("{path}.selector"),
        );
        let attribute = field
            .attribute
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        if field.field_type == FieldType::Attribute && attribute.is_none() && !is_xpath {
            self.errors.push(CompileError::MissingAttribute {
                path: format!("{path}.attribute"),
            });
        }
        let steps = self.steps(field, &path);
        Field {
            name: field.name.clone(),
            sel,
            kind: field.field_type,
            attribute,
            multiple: field.multiple,
            required: field.required,
            default: field.default.clone(),
            steps,
        }
    }

    fn steps(&mut self, field: &FieldSpec, path: &str) -> Vec<Step> {
        if field.transform.len() > self.limits.max_transforms {
            self.errors.push(CompileError::OverLimit {
                path: format!("{path}.transform"),
                message: format!(
                    "{} steps exceed the limit of {} (limits.max_transforms)",
                    field.transform.len(),
                    self.limits.max_transforms
                ),
            });
            // Every value of the field fails, rather than running an unbounded chain.
            return vec![Step::Broken];
        }
        field
            .transform
            .iter()
            .enumerate()
            .map(|(step, transform)| {
                Step::compile(
                    transform,
                    &format!("{path}.transform[{step}]"),
                    &self.limits,
                )
                .unwrap_or_else(|error| {
                    self.errors.push(error);
                    Step::Broken
                })
            })
            .collect()
    }

    fn selector(
        &mut self,
        selector: &str,
        is_xpath: bool,
        relative_to_item: bool,
        path: &str,
    ) -> Sel {
        // No parser sees a selector that could be deep enough to exhaust its stack.
        if let Err(refused) = scan_selector(selector, is_xpath, &self.limits) {
            self.errors.push(CompileError::OverLimit {
                path: path.to_owned(),
                message: refused.to_string(),
            });
            return Sel::Never;
        }
        if !is_xpath {
            return match Css::parse(selector) {
                Ok(css) => Sel::Css(css),
                Err(error) => {
                    let message = error
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    self.errors.push(CompileError::InvalidCss {
                        path: path.to_owned(),
                        message,
                    });
                    Sel::Never
                }
            };
        }
        if let Some(name) = xpath_namespace_prefix(selector) {
            self.errors.push(CompileError::InvalidXpath {
                path: path.to_owned(),
                message: format!("namespace prefixes are not supported ({name})"),
            });
            return Sel::Never;
        }
        let trimmed = selector.trim();
        let factory = sxd_xpath::Factory::new();
        let mut source = match trimmed {
            // The root made relative is the item itself (`./` alone would not parse).
            "/" if relative_to_item => ".".to_owned(),
            _ if relative_to_item && trimmed.starts_with('/') => format!(".{trimmed}"),
            _ => trimmed.to_owned(),
        };
        if source != trimmed && !matches!(factory.build(&source), Ok(Some(_))) {
            // A leading `/` that is not a path's (`/ + 1`, `/+title`): made relative it no
            // longer parses, so it keeps the meaning validation checked.
            source = trimmed.to_owned();
        }
        match factory.build(&source) {
            Ok(Some(_)) => {
                self.xpaths.push(source);
                Sel::Xpath(self.xpaths.len() - 1)
            }
            Ok(None) => {
                let message = "empty expression".to_owned();
                self.errors.push(CompileError::InvalidXpath {
                    path: path.to_owned(),
                    message,
                });
                Sel::Never
            }
            Err(error) => {
                self.errors.push(CompileError::InvalidXpath {
                    path: path.to_owned(),
                    message: error.to_string(),
                });
                Sel::Never
            }
        }
    }
}
