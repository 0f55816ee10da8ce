//! Extraction over arbitrary HTML: the first byte picks one of the fixed specs (CSS and
//! XPath, every field type, transforms, next and stop selectors) and a content type; the rest
//! is the page. Extraction and the cheap next-page pass must not panic, overflow the stack or
//! allocate without bound, with and without scripting, and must agree on the next page.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use selextract_extract::Extractor;
use selextract_fuzz::{CONTENT_TYPES, extract_and_check, fixed_specs, on_server_stack};

static EXTRACTORS: LazyLock<Vec<Extractor>> = LazyLock::new(fixed_specs);

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let extractor = &EXTRACTORS[usize::from(choice) % EXTRACTORS.len()];
    let content_type = CONTENT_TYPES[usize::from(choice >> 6) % CONTENT_TYPES.len()];
    on_server_stack(|| extract_and_check(extractor, body, content_type));
});
