//! Reading an nginx configuration as nginx itself assembled it: the files
//! `nginx -T` prints, parsed into directives that keep their file and line,
//! with each `include` followed by the directives of the files it names.

use std::fmt;
use std::path::{Path, PathBuf};

/// One directive: `proxy_cache_lock on;`, or a block (`location / { ... }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// Its name (`proxy_cache_lock`).
    pub name: String,
    /// Its arguments, unquoted (`["on"]`).
    pub args: Vec<String>,
    /// Where it is written.
    pub at: Place,
    /// A block's directives (`None` for a simple directive). An `include`
    /// carries, as its block, the directives of the files it names.
    pub block: Option<Vec<Directive>>,
}

/// A file and a line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The file.
    pub file: PathBuf,
    /// The line.
    pub line: u32,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A syntax error, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct SyntaxError {
    /// Where.
    pub at: Place,
    /// What.
    pub message: String,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String, u32),
    Semi(u32),
    Open(u32),
    Close(u32),
}

fn tokens(text: &str, file: &Path) -> Result<Vec<Token>, SyntaxError> {
    let err = |line, message: &str| SyntaxError {
        at: Place {
            file: file.to_path_buf(),
            line,
        },
        message: message.to_string(),
    };
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                out.push(Token::Semi(line));
                chars.next();
            }
            '{' => {
                out.push(Token::Open(line));
                chars.next();
            }
            '}' => {
                out.push(Token::Close(line));
                chars.next();
            }
            '"' | '\'' => {
                let quote = c;
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err(start, "unterminated quoted string")),
                        Some('\\') => match chars.next() {
                            Some(e) if e == quote || e == '\\' => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(err(start, "unterminated quoted string")),
                        },
                        Some(ch) if ch == quote => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                        }
                    }
                }
                out.push(Token::Word(word, start));
            }
            _ => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, ';' | '{' | '}') {
                        break;
                    }
                    // `${name}` is one word: its braces are not a block
                    if ch == '$' {
                        word.push(ch);
                        chars.next();
                        if chars.peek() == Some(&'{') {
                            for inner in chars.by_ref() {
                                word.push(inner);
                                if inner == '}' {
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                    if ch == '\\' {
                        chars.next();
                        if let Some(e) = chars.next() {
                            word.push(e);
                        }
                        continue;
                    }
                    word.push(ch);
                    chars.next();
                }
                out.push(Token::Word(word, line));
            }
        }
    }
    Ok(out)
}

/// Parses one file's text.
///
/// # Errors
/// A [`SyntaxError`] at the first unbalanced brace or unterminated directive.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Directive>, SyntaxError> {
    let toks = tokens(text, file)?;
    let mut i = 0;
    let out = block(&toks, &mut i, file, None)?;
    Ok(out)
}

fn block(
    toks: &[Token],
    i: &mut usize,
    file: &Path,
    opened: Option<u32>,
) -> Result<Vec<Directive>, SyntaxError> {
    let place = |line| Place {
        file: file.to_path_buf(),
        line,
    };
    let mut out = Vec::new();
    let mut words: Vec<(String, u32)> = Vec::new();
    while *i < toks.len() {
        let t = &toks[*i];
        *i += 1;
        match t {
            Token::Word(w, l) => words.push((w.clone(), *l)),
            Token::Semi(l) => {
                let Some(((name, line), args)) = words.split_first() else {
                    return Err(SyntaxError {
                        at: place(*l),
                        message: "unexpected \";\"".into(),
                    });
                };
                out.push(Directive {
                    name: name.clone(),
                    args: args.iter().map(|(a, _)| a.clone()).collect(),
                    at: place(*line),
                    block: None,
                });
                words.clear();
            }
            Token::Open(l) => {
                let Some(((name, line), args)) = words.split_first() else {
                    return Err(SyntaxError {
                        at: place(*l),
                        message: "unexpected \"{\"".into(),
                    });
                };
                let (name, line) = (name.clone(), *line);
                let args = args.iter().map(|(a, _)| a.clone()).collect();
                words.clear();
                let inner = block(toks, i, file, Some(*l))?;
                out.push(Directive {
                    name,
                    args,
                    at: place(line),
                    block: Some(inner),
                });
            }
            Token::Close(l) => {
                if opened.is_none() {
                    return Err(SyntaxError {
                        at: place(*l),
                        message: "unexpected \"}\"".into(),
                    });
                }
                if let Some((_, wl)) = words.first() {
                    return Err(SyntaxError {
                        at: place(*wl),
                        message: "directive is not terminated by \";\"".into(),
                    });
                }
                return Ok(out);
            }
        }
    }
    if let Some((_, wl)) = words.first() {
        return Err(SyntaxError {
            at: place(*wl),
            message: "directive is not terminated by \";\"".into(),
        });
    }
    if let Some(l) = opened {
        return Err(SyntaxError {
            at: place(l),
            message: "\"{\" is not closed by \"}\"".into(),
        });
    }
    Ok(out)
}

/// The files `nginx -T` printed, in its order: each `# configuration file
/// PATH:` line and the text up to the next.
pub fn dumped_files(dump: &str) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for line in dump.split_inclusive('\n') {
        let head = line
            .trim_end()
            .strip_prefix("# configuration file ")
            .and_then(|r| r.strip_suffix(':'));
        match (head, out.last_mut()) {
            (Some(path), _) => out.push((PathBuf::from(path), String::new())),
            (None, Some((_, text))) => text.push_str(line),
            (None, None) => {}
        }
    }
    // nginx ends each file's text with one blank line of its own
    for (_, text) in &mut out {
        if text.ends_with("\n\n") {
            text.pop();
        }
    }
    out
}

/// A whole configuration: the main file's directives, every `include`
/// followed into the files `nginx -T` printed.
#[derive(Clone, Debug)]
pub struct Config {
    /// The main file.
    pub main: PathBuf,
    /// The directory relative `include` paths start from (the main file's).
    pub conf_dir: PathBuf,
    /// The main file's directives, includes expanded.
    pub root: Vec<Directive>,
    /// Every printed file's text, as nginx read it.
    pub texts: Vec<(PathBuf, String)>,
}

impl Config {
    /// Assembles `nginx -T`'s output for the main file `main`.
    ///
    /// # Errors
    /// A [`SyntaxError`] in any printed file, or an include nested too deep.
    pub fn from_dump(main: &Path, dump: &str) -> Result<Config, SyntaxError> {
        let files = dumped_files(dump);
        let mut parsed = Vec::with_capacity(files.len());
        for (path, text) in &files {
            parsed.push((path.clone(), parse(text, path)?));
        }
        let main_path = files
            .first()
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| main.to_path_buf());
        let conf_dir = main_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let root = parsed
            .iter()
            .find(|(p, _)| *p == main_path)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        let root = expand(root, &parsed, &conf_dir, 0)?;
        Ok(Config {
            main: main_path,
            conf_dir,
            root,
            texts: files,
        })
    }

    /// The text nginx read from `path`, when it read that file.
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.texts
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
    }

    /// `path` as nginx resolves an `include` argument: relative to the
    /// main file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve(&self.conf_dir, path)
    }
}

fn resolve(conf_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        conf_dir.join(p)
    }
}

fn expand(
    mut nodes: Vec<Directive>,
    files: &[(PathBuf, Vec<Directive>)],
    conf_dir: &Path,
    depth: u32,
) -> Result<Vec<Directive>, SyntaxError> {
    for d in &mut nodes {
        if depth > 16 {
            return Err(SyntaxError {
                at: d.at.clone(),
                message: "includes nested more than 16 deep".into(),
            });
        }
        if d.name == "include" && d.block.is_none() {
            let pattern = d.args.first().map(|a| resolve(conf_dir, a));
            let mut inner = Vec::new();
            if let Some(pattern) = pattern {
                let pattern = pattern.to_string_lossy().into_owned();
                // nginx includes glob matches in name order
                let mut matched: Vec<&(PathBuf, Vec<Directive>)> = files
                    .iter()
                    .filter(|(p, _)| glob_match(&pattern, &p.to_string_lossy()))
                    .collect();
                matched.sort_by(|a, b| a.0.cmp(&b.0));
                for (_, ds) in matched {
                    inner.extend(expand(ds.clone(), files, conf_dir, depth + 1)?);
                }
            }
            d.block = Some(inner);
        } else if let Some(b) = d.block.take() {
            d.block = Some(expand(b, files, conf_dir, depth)?);
        }
    }
    Ok(nodes)
}

/// Shell-style matching of `*`, `?` and `[...]`-free patterns, as nginx's
/// `include` globs are written.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The blocks from the top down to a directive, and the directive.
#[derive(Clone, Debug)]
pub struct Found<'a> {
    /// The enclosing blocks, outermost first (`http`, `server`, `location`),
    /// `include`s left out (their directives belong to the block around).
    pub chain: Vec<&'a Directive>,
    /// The directive.
    pub directive: &'a Directive,
}

impl Found<'_> {
    /// The innermost enclosing block.
    pub fn parent(&self) -> Option<&Directive> {
        self.chain.last().copied()
    }
}

/// Every directive for which `pick` holds, with its enclosing blocks.
pub fn find_all<'a>(root: &'a [Directive], pick: &dyn Fn(&Directive) -> bool) -> Vec<Found<'a>> {
    fn walk<'a>(
        nodes: &'a [Directive],
        chain: &mut Vec<&'a Directive>,
        pick: &dyn Fn(&Directive) -> bool,
        out: &mut Vec<Found<'a>>,
    ) {
        for d in nodes {
            if pick(d) {
                out.push(Found {
                    chain: chain.clone(),
                    directive: d,
                });
            }
            if let Some(b) = &d.block {
                let is_include = d.name == "include";
                if !is_include {
                    chain.push(d);
                }
                walk(b, chain, pick, out);
                if !is_include {
                    chain.pop();
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), pick, &mut out);
    out
}

/// The directives of one block, those of its `include`s in place, not
/// those of nested blocks.
pub fn level(block: &[Directive]) -> Vec<&Directive> {
    let mut out = Vec::new();
    for d in block {
        if d.name == "include" {
            if let Some(b) = &d.block {
                out.extend(level(b));
            }
        } else {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_blocks_quotes_and_comments_keep_their_lines() {
        let text = "http {\n  # a comment; with { braces }\n  map $a $b { default \"x y\"; }\n  server {\n    location / { proxy_pass http://o; add_header X-C '$v' always; }\n  }\n}\n";
        let d = parse(text, Path::new("/e/n.conf")).unwrap();
        assert_eq!(d.len(), 1);
        let http = &d[0];
        assert_eq!((http.name.as_str(), http.at.line), ("http", 1));
        let inner = http.block.as_ref().unwrap();
        assert_eq!(inner[0].name, "map");
        assert_eq!(inner[0].block.as_ref().unwrap()[0].args, vec!["x y"]);
        let loc = &inner[1].block.as_ref().unwrap()[0];
        assert_eq!(
            (loc.name.as_str(), loc.args.clone(), loc.at.line),
            ("location", vec!["/".to_string()], 5)
        );
        let add = &loc.block.as_ref().unwrap()[1];
        assert_eq!(add.args, vec!["X-C", "$v", "always"]);
        assert_eq!(add.at.to_string(), "/e/n.conf:5");
    }

    #[test]
    fn a_variable_in_braces_is_one_word() {
        let d = parse("set $x ${host}a;\n", Path::new("n.conf")).unwrap();
        assert_eq!(d[0].args, vec!["$x", "${host}a"]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("http {\n  a b\n}\n", Path::new("n.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "n.conf:2: directive is not terminated by \";\""
        );
        let e = parse("http {\n a;\n", Path::new("n.conf")).unwrap_err();
        assert_eq!(e.to_string(), "n.conf:1: \"{\" is not closed by \"}\"");
        let e = parse("a;\n}\n", Path::new("n.conf")).unwrap_err();
        assert_eq!(e.at.line, 2);
    }

    #[test]
    fn includes_are_followed_into_the_printed_files_in_name_order() {
        let dump = "# configuration file /c/nginx.conf:\nhttp {\n  include conf.d/*.conf;\n  server { location / { include /c/knobs.conf; } }\n}\n\n# configuration file /c/conf.d/b.conf:\nb 2;\n\n# configuration file /c/conf.d/a.conf:\na 1;\n\n# configuration file /c/knobs.conf:\nproxy_cache_lock on;\n\n";
        let c = Config::from_dump(Path::new("/c/nginx.conf"), dump).unwrap();
        let http = c.root[0].block.as_ref().unwrap();
        let names: Vec<&str> = level(http).iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "server"]);
        let lock = find_all(&c.root, &|d| d.name == "proxy_cache_lock");
        assert_eq!(lock.len(), 1);
        let chain: Vec<&str> = lock[0].chain.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(chain, vec!["http", "server", "location"]);
        assert_eq!(lock[0].directive.at.to_string(), "/c/knobs.conf:1");
        assert_eq!(c.resolve("x.conf"), PathBuf::from("/c/x.conf"));
    }

    #[test]
    fn globs_match_as_the_shell_does() {
        assert!(glob_match("/a/*.conf", "/a/x.conf"));
        assert!(!glob_match("/a/*.conf", "/a/x.confx"));
        assert!(glob_match("/a/?.conf", "/a/x.conf"));
        assert!(glob_match("/a/x.conf", "/a/x.conf"));
        assert!(!glob_match("/a/y.conf", "/a/x.conf"));
    }
}
