//! The headless browser the devserver UI test drives: Debian's `chromium` and
//! `chromium-driver`. `cargo xtask ci` installs them when they are missing and it can (root with
//! `apt-get`); otherwise it says loudly that the browser test will skip.

use std::path::Path;
use std::process::{Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn present() -> bool {
    let set = |var: &str, default: &str| {
        std::env::var_os(var)
            .map_or_else(|| Path::new(default).is_file(), |p| Path::new(&p).is_file())
    };
    set("CHROME", CHROMIUM) && set("CHROMEDRIVER", CHROMEDRIVER)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt(args: &[&str]) -> bool {
    eprintln!("$ apt-get {}", args.join(" "));
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure chromium and chromedriver are installed, installing them with apt-get when
/// possible. Never fails: without a browser the UI test records a skip, and this says so.
pub(crate) fn ensure() {
    if present() {
        return;
    }
    if is_root() && Path::new("/usr/bin/apt-get").is_file() {
        eprintln!("xtask: installing chromium and chromium-driver for the UI browser test");
        if apt(&["update", "-qq"])
            && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])
            && present()
        {
            return;
        }
    }
    eprintln!(
        "\n!!! UI BROWSER TEST WILL SKIP: chromium/chromedriver are missing and could not be \
         installed (needs root and apt-get).\n"
    );
}
