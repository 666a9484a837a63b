//! Checks on the Terraform in `terraform/` that need no cloud access.
//!
//! 1. `terraform fmt -check` when `terraform` is installed (skipped, loudly,
//!    when it is not). `terraform init/validate` need provider downloads and
//!    are not run here.
//! 2. A std-only lint over every directory of `.tf` files (each one is a
//!    Terraform module): variables have `description` and `type`, outputs
//!    have `description`, every declared variable is used and every `var.x`
//!    is declared, calls of local modules pass every variable without a
//!    default (and nothing the module does not declare), no ingress rule
//!    opens to `0.0.0.0/0` or `::/0`, and `templatefile()` paths exist.
//!
//! The lint understands just enough HCL: comments, string literals with
//! `${...}`/`%{...}` templates, and bracket nesting. Heredocs are treated as
//! opaque text.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

#[test]
fn terraform_fmt_is_clean() {
    let output = Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff", "terraform/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("SKIPPED: terraform not on PATH; `terraform fmt -check` was not run");
            return;
        }
        Err(e) => panic!("cannot run terraform: {e}"),
    };
    assert!(
        output.status.success(),
        "`terraform fmt -check -recursive -diff terraform/` failed ({}); run `terraform fmt -recursive terraform/`.\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn terraform_lint() {
    let root = terraform_dir();
    for required in [
        "modules/strata-node/versions.tf",
        "modules/strata-node/variables.tf",
        "modules/strata-node/main.tf",
        "modules/strata-node/outputs.tf",
        "modules/strata-node/templates/cloud-init.yaml.tftpl",
        "examples/single-node/main.tf",
        "examples/single-node/variables.tf",
        "examples/single-node/outputs.tf",
        "examples/single-node/terraform.tfvars.example",
        "README.md",
    ] {
        assert!(
            root.join(required).is_file(),
            "terraform/{required} is missing"
        );
    }
    let report = lint(&root);
    assert!(
        report.module_calls_checked > 0,
        "the lint found no call of a local module under {}",
        root.display()
    );
    assert!(
        report.errors.is_empty(),
        "Terraform lint found {} problem(s):\n  {}",
        report.errors.len(),
        report.errors.join("\n  ")
    );
}

/// The lint must catch each kind of mistake it claims to, and must not flag
/// HCL that merely looks suspicious (braces and `var.` inside strings).
#[test]
fn terraform_lint_catches_mistakes() {
    let dir = TempDir::new("lint-selftest");
    dir.write(
        "mod/variables.tf",
        r#"
variable "documented" {
  description = "Fine. Mentions var.nothing and { braces } in text."
  type        = string
}

variable "no_description" {
  type = string
}

variable "no_type" {
  description = "Has no type."
  default     = "x"
}

variable "unused" {
  description = "Never referenced outside its own block."
  type        = string
  default     = "x"

  validation {
    condition     = length(var.unused) > 0
    error_message = "Must not be empty."
  }
}
"#,
    );
    dir.write(
        "mod/main.tf",
        r#"
locals {
  greeting = "hello ${var.documented} ${upper("}")}"
  rendered = templatefile("${path.module}/templates/missing.tftpl", {})
  present  = templatefile("${path.module}/templates/present.tftpl", { x = var.no_description })
  other    = var.no_type
  broken   = var.undeclared
}

resource "aws_vpc_security_group_ingress_rule" "open" {
  cidr_ipv4 = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "egress_is_fine" {
  cidr_ipv4 = "0.0.0.0/0"
}

resource "aws_security_group" "inline" {
  dynamic "ingress" {
    for_each = [1]
    content {
      cidr_blocks = ["10.0.0.0/8", "0.0.0.0/0"]
    }
  }
}

output "undocumented" {
  value = local.greeting
}

output "documented" {
  description = "Fine."
  value       = local.other
}
"#,
    );
    dir.write("mod/templates/present.tftpl", "${x}\n");
    dir.write(
        "root/main.tf",
        r#"
module "m" {
  source = "../mod"

  no_description = "x"
  not_a_variable = 1
}
"#,
    );

    let report = lint(dir.path());
    let errors = report.errors.join("\n");
    let expect = [
        "variable \"no_description\" has no description",
        "variable \"no_type\" has no type",
        "variable \"unused\" is declared but never referenced",
        "var.undeclared is referenced but not declared",
        "output \"undocumented\" has no description",
        "templates/missing.tftpl",
        "resource \"aws_vpc_security_group_ingress_rule\" \"open\"",
        "resource \"aws_security_group\" \"inline\"",
        "module \"m\" does not pass required variable \"documented\"",
        "module \"m\" passes \"not_a_variable\"",
    ];
    for needle in expect {
        assert!(
            errors.contains(needle),
            "lint missed {needle:?}; it reported:\n{errors}"
        );
    }
    for wrong in [
        "variable \"documented\" has no",
        "var.nothing",
        "egress_is_fine",
        "present.tftpl",
        "output \"documented\"",
    ] {
        assert!(
            !errors.contains(wrong),
            "lint wrongly reported {wrong:?}; it reported:\n{errors}"
        );
    }
    assert_eq!(report.module_calls_checked, 1, "{errors}");
    // Messages name the file (and line) so they can be acted on.
    assert!(
        errors.contains("mod/variables.tf:7: variable \"no_description\""),
        "{errors}"
    );
}

// ---------------------------------------------------------------------------
// Lint
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Report {
    errors: Vec<String>,
    module_calls_checked: usize,
}

fn lint(root: &Path) -> Report {
    let mut report = Report::default();
    let mut modules: BTreeMap<PathBuf, Vec<TfFile>> = BTreeMap::new();
    let mut files = Vec::new();
    collect_tf_files(root, &mut files);
    assert!(!files.is_empty(), "no .tf files under {}", root.display());
    for path in files {
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let dir = path.parent().expect("a file has a parent").to_path_buf();
        modules.entry(dir).or_default().push(TfFile {
            shown,
            doc: Doc::parse(&text),
        });
    }
    for (dir, files) in &modules {
        lint_module(root, dir, files, &modules, &mut report);
    }
    report
}

fn collect_tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != ".terraform" {
                collect_tf_files(&path, out);
            }
        } else if name.ends_with(".tf") {
            out.push(path);
        }
    }
}

struct TfFile {
    shown: String,
    doc: Doc,
}

fn lint_module(
    root: &Path,
    dir: &Path,
    files: &[TfFile],
    modules: &BTreeMap<PathBuf, Vec<TfFile>>,
    report: &mut Report,
) {
    let errors = &mut report.errors;
    let mut declared = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut references = Vec::new(); // (name, file, line)

    for file in files {
        let doc = &file.doc;
        let top = doc.blocks(0, doc.len());
        for block in &top {
            let at = format!("{}:{}", file.shown, block.line);
            let attrs = doc.attributes(block.body.0, block.body.1);
            match (block.kind.as_str(), block.labels.as_slice()) {
                ("variable", [name]) => {
                    declared.insert(name.clone());
                    for needed in ["description", "type"] {
                        if !attrs.contains(needed) {
                            errors.push(format!("{at}: variable \"{name}\" has no {needed}"));
                        }
                    }
                }
                ("output", [name]) if !attrs.contains("description") => {
                    errors.push(format!("{at}: output \"{name}\" has no description"));
                }
                _ => {}
            }
        }

        for (name, offset) in doc.var_references() {
            let inside_variable = top
                .iter()
                .any(|b| b.kind == "variable" && b.body.0 <= offset && offset < b.body.1);
            if !inside_variable {
                used.insert(name.clone());
            }
            references.push((name, file.shown.clone(), doc.line_of(offset)));
        }

        for (path, block) in doc.all_blocks() {
            if opens_ingress_to_world(doc, &block) {
                errors.push(format!(
                    "{}:{}: {path} opens ingress to 0.0.0.0/0 or ::/0",
                    file.shown, block.line,
                ));
            }
        }

        for (literal, offset) in doc.templatefile_paths() {
            let at = format!("{}:{}", file.shown, doc.line_of(offset));
            let resolved = literal
                .replace("${path.module}", &dir.display().to_string())
                .replace("${path.root}", &dir.display().to_string());
            if resolved.contains("${") {
                errors.push(format!(
                    "{at}: templatefile(\"{literal}\") uses an expression the lint cannot resolve; use \"${{path.module}}/...\""
                ));
                continue;
            }
            let path = if Path::new(&resolved).is_absolute() {
                PathBuf::from(&resolved)
            } else {
                dir.join(&resolved)
            };
            if !path.is_file() {
                errors.push(format!(
                    "{at}: templatefile(\"{literal}\") names {}, which does not exist",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ));
            }
        }
    }

    for name in declared.difference(&used) {
        let file = files
            .iter()
            .find(|f| {
                f.doc
                    .blocks(0, f.doc.len())
                    .iter()
                    .any(|b| b.kind == "variable" && b.labels == [name.clone()])
            })
            .map(|f| f.shown.as_str())
            .unwrap_or("?");
        errors.push(format!(
            "{file}: variable \"{name}\" is declared but never referenced as var.{name} in {}",
            shown_dir(root, dir)
        ));
    }
    for (name, file, line) in &references {
        if !declared.contains(name) {
            errors.push(format!(
                "{file}:{line}: var.{name} is referenced but not declared in {}",
                shown_dir(root, dir)
            ));
        }
    }

    // Calls of local modules: every variable without a default is passed,
    // and nothing the module does not declare.
    for file in files {
        let doc = &file.doc;
        for block in doc.blocks(0, doc.len()) {
            let ("module", [call]) = (block.kind.as_str(), block.labels.as_slice()) else {
                continue;
            };
            let at = format!("{}:{}", file.shown, block.line);
            let Some(source) = doc.string_attribute(block.body.0, block.body.1, "source") else {
                errors.push(format!("{at}: module \"{call}\" has no literal source"));
                continue;
            };
            if !(source.starts_with("./") || source.starts_with("../")) {
                continue; // a registry or remote module: nothing local to check
            }
            let target = normalize(&dir.join(&source));
            let Some(target_files) = modules.get(&target) else {
                errors.push(format!(
                    "{at}: module \"{call}\" source {source:?} is not a directory of .tf files"
                ));
                continue;
            };
            report.module_calls_checked += 1;
            let mut module_vars = BTreeMap::new(); // name -> has default
            for tf in target_files {
                for b in tf.doc.blocks(0, tf.doc.len()) {
                    if let ("variable", [name]) = (b.kind.as_str(), b.labels.as_slice()) {
                        let has_default = tf.doc.attributes(b.body.0, b.body.1).contains("default");
                        module_vars.insert(name.clone(), has_default);
                    }
                }
            }
            let passed = doc.attributes(block.body.0, block.body.1);
            for (name, has_default) in &module_vars {
                if !has_default && !passed.contains(name) {
                    errors.push(format!(
                        "{at}: module \"{call}\" does not pass required variable \"{name}\" (no default in {source})"
                    ));
                }
            }
            const META: [&str; 6] = [
                "source",
                "version",
                "providers",
                "depends_on",
                "count",
                "for_each",
            ];
            for name in &passed {
                if !META.contains(&name.as_str()) && !module_vars.contains_key(name) {
                    errors.push(format!(
                        "{at}: module \"{call}\" passes \"{name}\", which {source} does not declare"
                    ));
                }
            }
        }
    }
}

fn shown_dir(root: &Path, dir: &Path) -> String {
    match dir.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => dir.display().to_string(),
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// An ingress rule resource, an `aws_security_group_rule` of type ingress, or
/// an `ingress` block (plain or dynamic) whose text names the whole internet.
fn opens_ingress_to_world(doc: &Doc, block: &Block) -> bool {
    let body = doc.text(block.body.0, block.body.1);
    let is_ingress = match (block.kind.as_str(), block.labels.as_slice()) {
        ("resource", [ty, ..]) if ty.contains("ingress") => true,
        ("resource", [ty, ..]) if ty == "aws_security_group_rule" => {
            doc.string_attribute(block.body.0, block.body.1, "type")
                .as_deref()
                == Some("ingress")
        }
        ("ingress", _) => true,
        ("dynamic", [label, ..]) => label == "ingress",
        _ => false,
    };
    is_ingress && WORLD.iter().any(|w| body.contains(w))
}

// ---------------------------------------------------------------------------
// Just enough HCL
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Class {
    /// Expressions, including the inside of `${...}` in strings.
    Code,
    /// String literal text, quotes and template delimiters; heredoc bodies.
    Str,
    Comment,
}

struct Doc {
    chars: Vec<char>,
    class: Vec<Class>,
    /// Opening quote of each string literal -> its closing quote.
    string_ends: BTreeMap<usize, usize>,
}

#[derive(Debug)]
struct Block {
    kind: String,
    labels: Vec<String>,
    /// Char range of the body, between the braces.
    body: (usize, usize),
    line: usize,
}

impl Block {
    fn describe(&self) -> String {
        let mut s = self.kind.clone();
        for label in &self.labels {
            s.push_str(&format!(" \"{label}\""));
        }
        s
    }
}

enum Mode {
    Code,
    Str,
    /// Inside `${...}` or `%{...}`: code, with this many unclosed `{`.
    Template(usize),
}

impl Doc {
    fn parse(text: &str) -> Doc {
        let chars: Vec<char> = text.chars().collect();
        let mut class = vec![Class::Code; chars.len()];
        let mut stack = vec![Mode::Code];
        let mut string_starts = Vec::new();
        let mut string_ends = BTreeMap::new();
        let mut i = 0;
        let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
        while i < chars.len() {
            let c = chars[i];
            match stack.last().expect("the stack never empties") {
                Mode::Code | Mode::Template(_) => {
                    if c == '#' || (c == '/' && at(i + 1) == '/') {
                        while i < chars.len() && chars[i] != '\n' {
                            class[i] = Class::Comment;
                            i += 1;
                        }
                        continue;
                    }
                    if c == '/' && at(i + 1) == '*' {
                        let start = i;
                        i += 2;
                        while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                            i += 1;
                        }
                        i = (i + 2).min(chars.len());
                        class[start..i].fill(Class::Comment);
                        continue;
                    }
                    if c == '<'
                        && at(i + 1) == '<'
                        && let Some(end) = heredoc_end(&chars, i)
                    {
                        class[i..end].fill(Class::Str);
                        i = end;
                        continue;
                    }
                    match c {
                        '"' => {
                            class[i] = Class::Str;
                            stack.push(Mode::Str);
                            string_starts.push(i);
                        }
                        '{' => {
                            if let Some(Mode::Template(depth)) = stack.last_mut() {
                                *depth += 1;
                            }
                        }
                        '}' => match stack.last_mut() {
                            Some(Mode::Template(0)) => {
                                class[i] = Class::Str;
                                stack.pop();
                            }
                            Some(Mode::Template(depth)) => *depth -= 1,
                            _ => {}
                        },
                        _ => {}
                    }
                    i += 1;
                }
                Mode::Str => {
                    class[i] = Class::Str;
                    match c {
                        '\\' => {
                            if i + 1 < chars.len() {
                                class[i + 1] = Class::Str;
                            }
                            i += 2;
                        }
                        '"' => {
                            stack.pop();
                            if let Some(start) = string_starts.pop() {
                                string_ends.insert(start, i);
                            }
                            i += 1;
                        }
                        '$' | '%' if at(i + 1) == c && at(i + 2) == '{' => {
                            // `$${` / `%%{`: a literal `${` / `%{`.
                            class[i..(i + 3).min(chars.len())].fill(Class::Str);
                            i += 3;
                        }
                        '$' | '%' if at(i + 1) == '{' => {
                            class[i + 1] = Class::Str;
                            stack.push(Mode::Template(0));
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
            }
        }
        Doc {
            chars,
            class,
            string_ends,
        }
    }

    fn len(&self) -> usize {
        self.chars.len()
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().collect()
    }

    fn line_of(&self, offset: usize) -> usize {
        1 + self.chars[..offset].iter().filter(|&&c| c == '\n').count()
    }

    fn is_code(&self, i: usize, c: char) -> bool {
        self.chars[i] == c && self.class[i] == Class::Code
    }

    /// Blocks directly inside `from..to` (bracket depth 0 there).
    fn blocks(&self, from: usize, to: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut line_start = from;
        let mut open: Option<(usize, usize)> = None; // (header start, brace)
        let mut i = from;
        while i < to {
            let c = self.chars[i];
            if c == '\n' && depth == 0 {
                line_start = i + 1;
            }
            if self.class[i] == Class::Code {
                match c {
                    '{' | '[' | '(' => {
                        if depth == 0 && c == '{' {
                            open = Some((line_start, i));
                        }
                        depth += 1;
                    }
                    '}' | ']' | ')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0
                            && c == '}'
                            && let Some((header_start, brace)) = open.take()
                            && let Some(block) = self.block(header_start, brace, i)
                        {
                            out.push(block);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        out
    }

    fn block(&self, header_start: usize, brace: usize, close: usize) -> Option<Block> {
        // A header is `kind "label" ... {`; `name = {` is an attribute.
        let mut kind = String::new();
        let mut labels = Vec::new();
        let mut i = header_start;
        while i < brace {
            let c = self.chars[i];
            if self.class[i] == Class::Comment || c.is_whitespace() {
                i += 1;
            } else if c == '"' && self.class[i] == Class::Str {
                let mut label = String::new();
                i += 1;
                while i < brace && !(self.chars[i] == '"' && self.class[i] == Class::Str) {
                    label.push(self.chars[i]);
                    i += 1;
                }
                labels.push(label);
                i += 1;
            } else if is_ident(c) && kind.is_empty() && labels.is_empty() {
                while i < brace && is_ident(self.chars[i]) {
                    kind.push(self.chars[i]);
                    i += 1;
                }
            } else {
                return None; // `=`, an expression: not a block header
            }
        }
        if kind.is_empty() {
            return None;
        }
        Some(Block {
            kind,
            labels,
            body: (brace + 1, close),
            line: self.line_of(brace),
        })
    }

    /// Every block at any depth, with its path from the top-level block
    /// (`resource "a" "b" > dynamic "ingress"`).
    fn all_blocks(&self) -> Vec<(String, Block)> {
        let mut out = Vec::new();
        let mut pending: Vec<(String, Block)> = self
            .blocks(0, self.len())
            .into_iter()
            .map(|b| (b.describe(), b))
            .collect();
        while let Some((path, block)) = pending.pop() {
            for inner in self.blocks(block.body.0, block.body.1) {
                pending.push((format!("{path} > {}", inner.describe()), inner));
            }
            out.push((path, block));
        }
        out
    }

    /// Names of the attributes (`name = ...`) directly inside `from..to`.
    fn attributes(&self, from: usize, to: usize) -> BTreeSet<String> {
        self.attribute_offsets(from, to)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    fn attribute_offsets(&self, from: usize, to: usize) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut at_line_start = true;
        let mut i = from;
        while i < to {
            let c = self.chars[i];
            if c == '\n' {
                at_line_start = true;
                i += 1;
                continue;
            }
            if self.class[i] == Class::Code {
                if depth == 0 && at_line_start && is_ident(c) && !c.is_ascii_digit() {
                    let start = i;
                    while i < to && is_ident(self.chars[i]) {
                        i += 1;
                    }
                    let name: String = self.chars[start..i].iter().collect();
                    let mut j = i;
                    while j < to && (self.chars[j] == ' ' || self.chars[j] == '\t') {
                        j += 1;
                    }
                    if j < to && self.is_code(j, '=') && !(j + 1 < to && self.chars[j + 1] == '=') {
                        out.push((name, j + 1));
                    }
                    at_line_start = false;
                    continue;
                }
                match c {
                    '{' | '[' | '(' => depth += 1,
                    '}' | ']' | ')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            if !c.is_whitespace() {
                at_line_start = false;
            }
            i += 1;
        }
        out
    }

    /// The value of `name = "literal"` directly inside `from..to`.
    fn string_attribute(&self, from: usize, to: usize, name: &str) -> Option<String> {
        let (_, eq) = self
            .attribute_offsets(from, to)
            .into_iter()
            .find(|(n, _)| n == name)?;
        let mut i = eq;
        while i < to && (self.chars[i] == ' ' || self.chars[i] == '\t') {
            i += 1;
        }
        self.string_literal_at(i).map(|(s, _)| s)
    }

    /// The raw text of the string literal opening at `i`, and its end.
    fn string_literal_at(&self, i: usize) -> Option<(String, usize)> {
        let end = *self.string_ends.get(&i)?;
        Some((self.chars[i + 1..end].iter().collect(), end + 1))
    }

    /// `var.NAME` in code (not in comments or string text), with offsets.
    fn var_references(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for i in 0..self.len() {
            if self.class[i] != Class::Code || !self.chars[i..].starts_with(&['v', 'a', 'r', '.']) {
                continue;
            }
            if i > 0 && (is_ident(self.chars[i - 1]) || self.chars[i - 1] == '.') {
                continue;
            }
            let name: String = self.chars[i + 4..]
                .iter()
                .take_while(|&&c| is_ident(c))
                .collect();
            if !name.is_empty() {
                out.push((name, i));
            }
        }
        out
    }

    /// The literal first argument of every `templatefile(` call.
    fn templatefile_paths(&self) -> Vec<(String, usize)> {
        let needle: Vec<char> = "templatefile(".chars().collect();
        let mut out = Vec::new();
        for i in 0..self.len() {
            if self.class[i] != Class::Code
                || !self.chars[i..].starts_with(&needle)
                || (i > 0 && is_ident(self.chars[i - 1]))
            {
                continue;
            }
            let mut j = i + needle.len();
            while j < self.len() && self.chars[j].is_whitespace() {
                j += 1;
            }
            match self.string_literal_at(j) {
                Some((literal, _)) => out.push((literal, i)),
                None => out.push(("${<expression>}".into(), i)),
            }
        }
        out
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// End (exclusive) of a heredoc starting at `<<` or `<<-`, if this is one.
fn heredoc_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 2;
    if chars.get(i) == Some(&'-') {
        i += 1;
    }
    let marker: String = chars[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .collect();
    if marker.is_empty() {
        return None;
    }
    i += marker.len();
    if chars.get(i) != Some(&'\n') {
        return None;
    }
    let mut line_start = i + 1;
    while line_start <= chars.len() {
        let line_end = chars[line_start..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |p| line_start + p);
        let line: String = chars[line_start..line_end].iter().collect();
        if line.trim() == marker {
            return Some(line_end);
        }
        if line_end == chars.len() {
            return Some(chars.len());
        }
        line_start = line_end + 1;
    }
    Some(chars.len())
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "strata-terraform-{tag}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        fs::write(&path, text).expect("write file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
