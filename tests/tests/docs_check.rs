//! The documentation against the code: every environment variable `sightline serve --help` lists is
//! in the README's configuration table with the same default, and no file cites a section of a
//! document the repository does not hold.

mod common;

use std::collections::BTreeMap;

use common::*;

/// `NAME -> default` (None without one) of each option in `--help`.
fn help_defaults() -> BTreeMap<String, Option<String>> {
    let out = std::process::Command::new(binary()).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut options = BTreeMap::new();
    // Each option is a block that starts at its `--flag` line.
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        if line.trim_start().starts_with('-') && line.len() - line.trim_start().len() <= 6 {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    for block in &blocks {
        let Some(env) = block.split("[env: ").nth(1) else { continue };
        let name: String =
            env.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        let default = block.split("[default: ").nth(1).and_then(|d| d.split(']').next()).map(str::to_owned);
        options.insert(name, default);
    }
    assert!(options.len() > 40, "too few options parsed from --help: {options:?}");
    options
}

/// `NAME -> default cell` of the README's configuration table (rows `| \`NAME\` | default | ... |`).
fn readme_defaults() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let looks_like_env =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            looks_like_env.then(|| (name.to_owned(), cells.get(2).copied().unwrap_or("").trim_matches('`').to_owned()))
        })
        .collect()
}

#[test]
fn every_setting_in_help_is_in_the_readme_with_its_default() {
    let readme = readme_defaults();
    let mut problems = Vec::new();
    for (name, default) in help_defaults() {
        let Some(documented) = readme.get(&name) else {
            problems.push(format!("{name}: not in the README's configuration table"));
            continue;
        };
        let none = ["", "–", "-", "—", "unset", "(unset)", "none"];
        let same = match &default {
            Some(d) => documented == d,
            None => none.contains(&documented.as_str()),
        };
        if !same {
            problems.push(format!("{name}: --help says {default:?}, the README {documented:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_file_cites_a_section_of_a_document_the_repository_does_not_hold() {
    let citation = concat!("spec ", "§");
    let out = std::process::Command::new("git").args(["ls-files"]).current_dir(repo_root()).output().unwrap();
    assert!(out.status.success());
    let citing: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|path| std::fs::read_to_string(repo_root().join(path)).is_ok_and(|text| text.contains(citation)))
        .map(str::to_owned)
        .collect();
    assert!(citing.is_empty(), "these cite \"{citation}\": {citing:?}");
}

/// The long flags a subcommand's `--help` lists.
fn flags(subcommand: &str) -> Vec<String> {
    let out = std::process::Command::new(binary()).args([subcommand, "--help"]).output().unwrap();
    assert!(out.status.success(), "{subcommand} --help");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split([' ', '=']).next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn the_cache_commands_take_only_the_flags_that_apply_to_them() {
    let serving =
        ["port", "host", "max-batch-size", "model-instances", "grpc-port", "execution-providers", "pinned-models"];
    let store = ["model-dir", "model-cache-dir", "model-sources", "s3-bucket", "verify-on-load", "log-level"];
    for subcommand in ["pull", "models", "rm"] {
        let listed = flags(subcommand);
        for flag in serving {
            assert!(!listed.iter().any(|f| f == flag), "`{subcommand}` takes --{flag}, which only serving uses");
        }
        for flag in store {
            assert!(listed.iter().any(|f| f == flag), "`{subcommand}` lacks --{flag}: {listed:?}");
        }
    }
    let serve = flags("serve");
    assert!(serving.iter().chain(&store).all(|f| serve.iter().any(|s| s == f)), "serve keeps every flag: {serve:?}");
}
