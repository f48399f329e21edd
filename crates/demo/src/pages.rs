//! The demo app's pages: deterministic bodies of realistic sizes.

use std::fmt::Write as _;

/// Every route the app serves (besides `/health` and `/_demo/switches`).
pub const ROUTES: [&str; 6] = {
    let r = &atlas_vocab::demo::ROUTES;
    [
        r[0].path, r[1].path, r[2].path, r[3].path, r[4].path, r[5].path,
    ]
};

fn html(title: &str, rows: usize) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Atlas demo</title>\
         <link rel=\"stylesheet\" href=\"/static/app.css\"><script defer src=\"/static/app.js\"></script></head>\n<body><main><h1>{title}</h1>\n<ul>\n"
    );
    for i in 0..rows {
        let _ = writeln!(s, "<li class=\"row\" data-id=\"{i}\"><a href=\"/keys?item={i}\">Item {i}</a> <span>rendered on the server, {} units</span></li>", i * 37 % 1000);
    }
    s.push_str("</ul></main></body></html>\n");
    s
}

fn json(kind: &str, n: usize) -> String {
    let mut s = format!("{{\"kind\":\"{kind}\",\"items\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"id\":{i},\"name\":\"{kind}-{i}\",\"value\":{},\"ok\":true}}",
            i * 7919 % 10007
        );
    }
    s.push_str("]}\n");
    s
}

/// The body and content type of a route, or `None` for an unknown path.
pub fn page(path: &str) -> Option<(&'static str, String)> {
    Some(match path {
        "/" => ("text/html; charset=utf-8", html("Home", 28)),
        "/keys" => ("application/json", json("key", 48)),
        "/playground" => ("text/html; charset=utf-8", html("Playground", 58)),
        "/metrics" => ("application/json", json("metric", 44)),
        "/static/app.js" => {
            let mut s = String::from("\"use strict\";\n");
            for i in 0..120 {
                let _ = writeln!(s, "function step{i}(x) {{ return (x * {i} + 17) % 1009; }}");
            }
            ("application/javascript", s)
        }
        "/static/app.css" => {
            let mut s = String::new();
            for i in 0..70 {
                let _ = writeln!(
                    s,
                    ".row:nth-child({i}) {{ margin: {i}px 0; color: #{:06x}; }}",
                    i * 0x2f1b3
                );
            }
            ("text/css", s)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_realistic() {
        for r in ROUTES {
            let (_, body) = page(r).unwrap();
            assert!(
                (2_000..=8_500).contains(&body.len()),
                "{r}: {} bytes",
                body.len()
            );
        }
        assert!(page("/nope").is_none());
    }
}
