#![allow(clippy::unwrap_used)]

use super::*;

/// Argon2's smallest cost, so that most tests hash in microseconds; the defaults are
/// exercised by one test of their own.
fn cheap() -> PasswordConfig {
    PasswordConfig {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    }
}

#[test]
fn a_hash_is_an_argon2id_phc_string_with_the_configured_cost_that_verifies_only_its_password() {
    let hash = hash_password(&PasswordConfig::default(), "correct horse battery").unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(verify_password("correct horse battery", &hash).unwrap());
    assert!(!verify_password("correct horse batterY", &hash).unwrap());
    assert!(!needs_rehash(&PasswordConfig::default(), &hash).unwrap());
}

#[test]
fn the_same_password_hashes_differently_each_time() {
    let first = hash_password(&cheap(), "0123456789").unwrap();
    let second = hash_password(&cheap(), "0123456789").unwrap();
    assert_ne!(first, second);
    assert!(verify_password("0123456789", &first).unwrap());
    assert!(verify_password("0123456789", &second).unwrap());
}

#[test]
fn a_hash_made_with_other_parameters_still_verifies_and_needs_a_rehash() {
    let old = hash_password(&cheap(), "an older password").unwrap();
    let current = PasswordConfig {
        memory_kib: 16,
        iterations: 2,
        parallelism: 1,
    };
    assert!(verify_password("an older password", &old).unwrap());
    assert!(needs_rehash(&current, &old).unwrap());
    assert!(!needs_rehash(&cheap(), &old).unwrap());
    let fresh = hash_password(&current, "an older password").unwrap();
    assert!(!needs_rehash(&current, &fresh).unwrap());
}

#[test]
fn an_argon2i_hash_verifies_and_needs_a_rehash() {
    let params = Params::new(8, 1, 1, None).unwrap();
    let salt = SaltString::generate(&mut OsRng);
    let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
        .hash_password(b"legacy password", &salt)
        .unwrap()
        .to_string();
    assert!(argon2i.starts_with("$argon2i$"), "{argon2i}");
    assert!(verify_password("legacy password", &argon2i).unwrap());
    assert!(needs_rehash(&cheap(), &argon2i).unwrap());
}

#[test]
fn passwords_shorter_than_ten_characters_are_refused() {
    assert_eq!(
        hash_password(&cheap(), "123456789"),
        Err(PasswordError::TooShort)
    );
    assert_eq!(hash_password(&cheap(), ""), Err(PasswordError::TooShort));
    // Characters, not bytes: nine two-byte letters are still nine characters.
    assert_eq!(
        check_new_password("ééééééééé"),
        Err(PasswordError::TooShort)
    );
    assert_eq!(check_new_password("éééééééééé"), Ok(()));
    // No composition rules.
    assert_eq!(check_new_password("aaaaaaaaaa"), Ok(()));
}

#[test]
fn a_password_of_exactly_the_maximum_is_accepted_and_one_byte_more_is_refused() {
    let longest = "x".repeat(MAX_PASSWORD_BYTES);
    let hash = hash_password(&cheap(), &longest).unwrap();
    assert!(verify_password(&longest, &hash).unwrap());
    let over = "x".repeat(MAX_PASSWORD_BYTES + 1);
    assert_eq!(hash_password(&cheap(), &over), Err(PasswordError::TooLong));
    // Not truncated: the longer input does not verify against the shorter one's hash.
    assert_eq!(verify_password(&over, &hash), Err(PasswordError::TooLong));
    assert!(
        PasswordError::TooLong.to_string().contains("1024 bytes"),
        "{}",
        PasswordError::TooLong
    );
}

#[test]
fn a_megabyte_password_is_refused_before_any_hashing() {
    let huge = "p".repeat(1 << 20);
    // The default configuration: were the input hashed, this would be the costly path.
    assert_eq!(
        hash_password(&PasswordConfig::default(), &huge),
        Err(PasswordError::TooLong)
    );
    let hash = hash_password(&cheap(), "a fine password").unwrap();
    assert_eq!(verify_password(&huge, &hash), Err(PasswordError::TooLong));
    // The dummy verification bounds its input the same way and returns.
    verify_dummy_password(&cheap(), &huge);
}

#[test]
fn passwords_with_nul_and_newlines_are_hashed_as_given() {
    let hostile = "pass\0word\nwith\r\ncontrols";
    let hash = hash_password(&cheap(), hostile).unwrap();
    assert!(verify_password(hostile, &hash).unwrap());
    assert!(!verify_password("pass", &hash).unwrap());
    assert!(!verify_password("passwordwithcontrols", &hash).unwrap());
}

#[test]
fn a_malformed_stored_hash_is_an_error_not_a_mismatch() {
    for bad in [
        "",
        "plaintext",
        "$argon2id$v=19$m=8,t=1,p=1$",
        "argon2-hash",
    ] {
        assert!(
            matches!(
                verify_password("a fine password", bad),
                Err(PasswordError::MalformedHash(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(
                needs_rehash(&cheap(), bad),
                Err(PasswordError::MalformedHash(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn parameters_argon2_refuses_are_a_configuration_error() {
    let config = PasswordConfig {
        memory_kib: 1,
        iterations: 1,
        parallelism: 1,
    };
    assert!(matches!(
        config.check(),
        Err(PasswordError::InvalidConfig(_))
    ));
    assert!(matches!(
        hash_password(&config, "a fine password"),
        Err(PasswordError::InvalidConfig(_))
    ));
    let config = PasswordConfig {
        iterations: 0,
        ..PasswordConfig::default()
    };
    assert!(matches!(
        config.check(),
        Err(PasswordError::InvalidConfig(_))
    ));
    assert_eq!(PasswordConfig::default().check(), Ok(()));
}
