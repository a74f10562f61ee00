//! Credentials stay with the command that needs them.
//!
//! The command reads the remote store's credentials (`AWS_*`) from its environment; no stage ever
//! needs them. A worker inherits its parent's environment, and `sbatch` exports the submitter's to
//! the job (where a cluster may keep it in its accounting database), so every process the engine
//! starts for a stage gets the environment without them ([`scrub`]). Errors that may quote a URL
//! or a server's words pass through [`redact`] before anyone sees them.

use std::process::Command;

/// Whether the environment variable `name` may hold a credential: every `AWS_*` variable (the
/// remote's endpoint and keys; stages read none), Azure's and Google's credential variables, and
/// any name that says it is a secret, token, password or key.
pub fn is_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("AWS_") || upper.starts_with("AZURE_") || upper == "GOOGLE_APPLICATION_CREDENTIALS" || names_a_secret(name)
}

/// Removes from `command`'s environment every variable that may hold a credential
/// ([`is_credential`]): those it would inherit from this process and those set on it.
pub fn scrub(command: &mut Command) {
    let set: Vec<std::ffi::OsString> = command.get_envs().map(|(name, _)| name.to_os_string()).collect();
    for name in std::env::vars_os().map(|(name, _)| name).chain(set) {
        if name.to_str().is_some_and(is_credential) {
            command.env_remove(&name);
        }
    }
}

/// `text` with the user-and-password part of every URL in it (`scheme://user:secret@host`)
/// replaced by `***`, and every value of a variable of this process whose name says it is a secret
/// (`AWS_SECRET_ACCESS_KEY`, `HF_TOKEN`; six characters or more) replaced by `***`.
pub fn redact(text: &str) -> String {
    redact_values(&redact_userinfo(text), std::env::vars().filter(|(name, _)| names_a_secret(name)).map(|(_, value)| value))
}

/// Whether the variable `name` says it holds a secret (not merely where the remote is, as
/// `AWS_ENDPOINT_URL` and `AWS_REGION` do): its value is redacted wherever it appears.
fn names_a_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// Words in a variable's name that say it holds a secret.
const SECRET_WORDS: [&str; 8] = ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "ACCESS_KEY", "PRIVATE_KEY"];

fn redact_values(text: &str, secrets: impl Iterator<Item = String>) -> String {
    let mut out = text.to_string();
    for value in secrets {
        if value.len() >= 6 && out.contains(&value) {
            out = out.replace(&value, "***");
        }
    }
    out
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?`, `#` or white space; its userinfo before its last `@`.
        let end = after.find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace()).unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(a) => {
                out.push_str("***");
                out.push_str(&after[a..end]);
            }
            None => out.push_str(&after[..end]),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_variables_are_recognised_and_ordinary_ones_are_not() {
        for name in ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "aws_secret_access_key"] {
            assert!(is_credential(name), "{name}");
        }
        for name in ["HF_TOKEN", "GITHUB_TOKEN", "AZURE_STORAGE_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "DB_PASSWORD", "OPENAI_API_KEY"] {
            assert!(is_credential(name), "{name}");
        }
        for name in ["PATH", "HOME", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "LD_LIBRARY_PATH", "OODPIPE_REMOTE"] {
            assert!(!is_credential(name), "{name}");
        }
    }

    #[test]
    fn user_and_password_in_a_url_are_redacted_wherever_the_url_is() {
        assert_eq!(redact_userinfo("s3://AKIA:s3cr3t@bucket/x: refused"), "s3://***@bucket/x: refused");
        assert_eq!(redact_userinfo("endpoint http://me:pw@10.0.0.5:9000/b?x=1 failed"), "endpoint http://***@10.0.0.5:9000/b?x=1 failed");
        assert_eq!(redact_userinfo("http://host/a@b and https://u@h"), "http://host/a@b and https://***@h");
        assert_eq!(redact_userinfo("no url here, just a@b"), "no url here, just a@b");
    }

    #[test]
    fn a_scrubbed_command_runs_without_credentials() {
        let mut command = Command::new("env");
        command.env("OODPIPE_SCRUB_TEST_SECRET", "hunter2-value").env("OODPIPE_SCRUB_TEST_PLAIN", "kept");
        scrub(&mut command);
        let out = command.output().unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(!env.contains("OODPIPE_SCRUB_TEST_SECRET"), "{env}");
        assert!(env.contains("OODPIPE_SCRUB_TEST_PLAIN=kept") && env.contains("PATH="), "the rest is kept: {env}");
    }

    #[test]
    fn only_the_values_of_secrets_are_redacted_not_where_the_remote_is() {
        assert!(names_a_secret("AWS_SECRET_ACCESS_KEY") && names_a_secret("AWS_SESSION_TOKEN") && names_a_secret("HF_TOKEN"));
        assert!(!names_a_secret("AWS_ENDPOINT_URL") && !names_a_secret("AWS_REGION"));
    }

    #[test]
    fn credential_values_are_redacted_short_ones_are_left() {
        let secrets = || ["hunter2-value".to_string(), "abc".to_string()].into_iter();
        assert_eq!(redact_values("the key hunter2-value leaked, abc stays", secrets()), "the key *** leaked, abc stays");
    }
}
