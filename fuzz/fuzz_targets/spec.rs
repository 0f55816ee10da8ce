//! Spec parsing and validation: arbitrary bytes as the JSON body of `POST /api/v1/tasks`, in
//! any of the three accepted shapes. Nothing may panic, overflow the stack or allocate
//! without bound; a spec that validates must compile, and its canonical form (what the API
//! stores and the worker validates again) must validate to the same spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selextract_extract::Extractor;
use selextract_fuzz::on_server_stack;
use selextract_spec::{Limits, parse_task_input};

fuzz_target!(|data: &[u8]| {
    on_server_stack(|| {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        let limits = Limits::default();
        let Ok(input) = parse_task_input(&json, &limits) else {
            return;
        };
        let _extractor = Extractor::from_validated(&input.spec);
        let canonical = match serde_json::to_value(&input.spec) {
            Ok(canonical) => canonical,
            Err(error) => panic!("a validated spec does not serialize: {error}"),
        };
        match parse_task_input(&canonical, &limits) {
            Ok(again) => assert_eq!(
                again.spec.spec(),
                input.spec.spec(),
                "the canonical form of a valid spec validates to another spec"
            ),
            Err(errors) => panic!("the canonical form of a valid spec is invalid: {errors:?}"),
        }
    });
});
