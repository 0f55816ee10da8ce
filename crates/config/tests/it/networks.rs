//! Address and network lists.

use selextract_config::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Allow {
    #[serde(with = "selextract_config::ip_networks")]
    allow: Vec<IpNet>,
}

#[test]
fn addresses_and_networks_are_read_and_print_back_as_written() {
    let text = "allow = [\"127.0.0.1\", \"::1\", \"10.0.0.0/8\", \"fd00::/8\"]\n";
    let allow: Allow = toml::from_str(text).expect("parses");
    assert_eq!(allow.allow.len(), 4);
    assert!(allow.allow[2].contains(&"10.200.3.4".parse::<std::net::IpAddr>().expect("ip")));
    assert_eq!(toml::to_string(&allow).expect("serializes"), text);
}

#[test]
fn a_name_or_a_bad_prefix_is_an_error_naming_the_value() {
    for bad in ["localhost", "10.0.0.0/33", "", "1.2.3.4/-1"] {
        let error = toml::from_str::<Allow>(&format!("allow = [\"{bad}\"]\n"))
            .expect_err(bad)
            .to_string();
        assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
    }
}
