//! `gptrt plugins list|inspect`.

use std::path::PathBuf;

use clap::Subcommand;
use gptrt::Allowlist;

#[derive(Subcommand)]
pub(crate) enum PluginsCommand {
    /// Every plugin in $GPTRT_PLUGIN_PATH folders (and --dir), with its compatibility.
    List {
        /// Another folder to search.
        #[arg(long, value_name = "DIR")]
        dir: Vec<PathBuf>,
        /// Only accept libraries pinned in this SHA-256 allowlist (`sha256sum` format).
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
    },
    /// What one library offers and whether this host can use it.
    Inspect {
        /// The plugin library.
        path: PathBuf,
        /// Only accept libraries pinned in this SHA-256 allowlist.
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
    },
}

pub(crate) fn plugins(command: PluginsCommand) -> Result<(), String> {
    let allowlist = |path: &Option<PathBuf>| -> Result<Option<Allowlist>, String> {
        path.as_deref()
            .map(Allowlist::from_file)
            .transpose()
            .map_err(|e| e.to_string())
    };
    let describe = |library: &gptrt::PluginLibrary| {
        say!("{}", library.path.display());
        say!(
            "  sha256 {}  abi {}.{} (host {}.{}): compatible",
            library.sha256,
            library.abi.0,
            library.abi.1,
            gptrt_plugin_abi().0,
            gptrt_plugin_abi().1
        );
        for plugin in &library.plugins {
            // A sampler's stage decides what reaches it (before or after top-k/top-p).
            let stage = plugin
                .stage
                .map(|s| format!(" stage {s}"))
                .unwrap_or_default();
            say!(
                "  {} {} v{} [{}] abi {}.{}{stage}",
                plugin.kind.name(),
                plugin.id,
                plugin.version,
                plugin.name,
                plugin.abi.0,
                plugin.abi.1
            );
            if !plugin.description.is_empty() {
                say!("      {}", plugin.description);
            }
        }
    };
    match command {
        PluginsCommand::Inspect {
            path,
            allowlist: list,
        } => {
            let library = gptrt::plugin::load_library(&path, allowlist(&list)?.as_ref())
                .map_err(|e| e.to_string())?;
            describe(&library);
            Ok(())
        }
        PluginsCommand::List {
            dir,
            allowlist: list,
        } => {
            let allowlist = allowlist(&list)?;
            let mut dirs: Vec<PathBuf> = std::env::var_os(gptrt::plugin::PLUGIN_PATH_ENV)
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|d| !d.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            dirs.extend(dir);
            if dirs.is_empty() {
                say!(
                    "no plugin folders: set ${} or pass --dir",
                    gptrt::plugin::PLUGIN_PATH_ENV
                );
            }
            for dir in dirs {
                for file in gptrt::plugin::libraries_in(&dir).map_err(|e| e.to_string())? {
                    match gptrt::plugin::load_library(&file, allowlist.as_ref()) {
                        Ok(library) => describe(&library),
                        Err(e) => say!(
                            "{}
  incompatible: {e}",
                            file.display()
                        ),
                    }
                }
            }
            Ok(())
        }
    }
}

pub(crate) fn gptrt_plugin_abi() -> (u32, u32) {
    (
        gptrt_plugin_api::GPTRT_PLUGIN_ABI_MAJOR,
        gptrt_plugin_api::GPTRT_PLUGIN_ABI_MINOR,
    )
}
