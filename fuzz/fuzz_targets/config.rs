//! The files users write: a scenario (`atlas load --scenario`), the
//! proxy's config, `atlas.toml`, a chaos experiment and a healer policy.
//! The first byte picks which; the rest is the file. Each is read and
//! validated as the CLI does, and a bad one is an error, never a panic.
//! Files that name other files (data, certificates, nginx) are read but
//! not validated: validation would open them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let names_files = ["data", "cacert", "cert", "key", "nginx", "upstream_ca"]
        .iter()
        .any(|k| text.contains(k));
    match which % 5 {
        0 => {
            if let Ok(cfg) = atlas_loadgen::LoadConfig::from_toml(text) {
                if !names_files {
                    let _ = cfg.build();
                }
            }
        }
        1 => {
            if let Ok(cfg) = atlas_cacheproxy::ProxyConfig::from_toml(text) {
                if !names_files {
                    let _ = cfg.validate();
                }
            }
        }
        2 => {
            if let Ok(cfg) = atlas_gate::GateConfig::from_toml(text) {
                if !names_files {
                    let _ = cfg.validate();
                }
            }
        }
        3 => {
            if let Ok(x) = atlas_gate::chaos::Experiment::from_toml(text) {
                let _ = x.validate();
            }
        }
        _ => {
            let _ = atlas_healer::Policy::from_toml(text);
        }
    }
});
