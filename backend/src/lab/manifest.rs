//! `DIR/lab.json`: what `lab init` made. Written last and atomically, so a
//! directory with a readable manifest holds a complete lab; `lab activity`
//! reads the partition layout of each disk from it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::filesystem::FsKind;
use super::partition::{PartType, TableKind};
use super::{LabError, Result};

pub const LAB_FILE: &str = "lab.json";
/// Left in the lab directory while `lab init` runs.
pub const INCOMPLETE_MARKER: &str = ".lab-init-incomplete";
pub const HOSTS_DIR: &str = "hosts";
/// Version of the lab's layout; `lab activity` refuses other versions.
pub const LAB_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabManifest {
    pub format: u32,
    /// The Sendense version that made the lab.
    pub sendense_version: String,
    pub created_at: DateTime<Utc>,
    pub build_seconds: f64,
    /// Bytes of file content written into the filesystems.
    pub content_bytes: u64,
    /// Bytes the lab occupies on disk when it was made.
    pub allocated_bytes: u64,
    pub hosts: Vec<LabHost>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabHost {
    pub name: String,
    /// The host directory, relative to the lab directory.
    pub dir: String,
    /// `production` or `disaster-recovery`.
    pub role: String,
    pub vms: Vec<LabVm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabVm {
    pub name: String,
    pub role: String,
    pub disks: Vec<LabDisk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabDisk {
    pub name: String,
    /// The image, relative to the lab directory.
    pub file: String,
    pub virtual_size: u64,
    pub allocated_bytes: u64,
    pub table: TableKind,
    pub partitions: Vec<LabPartition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabPartition {
    pub number: u32,
    #[serde(rename = "type")]
    pub ptype: PartType,
    /// Byte offset on the disk.
    pub start: u64,
    pub size: u64,
    /// GPT unique partition GUID (empty on MBR).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub guid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FsKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Where the guest mounts it (`/`, `/boot/efi`, `C:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    pub files: u64,
    pub content_bytes: u64,
}

impl LabManifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(LAB_FILE)
    }

    /// Reads `DIR/lab.json`; `NotALab` when there is none.
    pub fn read(dir: &Path) -> Result<LabManifest> {
        let path = Self::path(dir);
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !dir.is_dir() {
                    return Err(LabError::NotADirectory { dir: dir.into() });
                }
                return Err(LabError::NotALab { dir: dir.into() });
            }
            Err(e) => return Err(LabError::io(format!("reading {}", path.display()), e)),
        };
        let manifest: LabManifest = serde_json::from_slice(&body).map_err(|e| LabError::Manifest { path: path.clone(), reason: e.to_string() })?;
        if manifest.format != LAB_FORMAT {
            return Err(LabError::Manifest {
                path,
                reason: format!("lab format {} is not the format {LAB_FORMAT} this Sendense makes: rebuild it with `sendense lab init --force`", manifest.format),
            });
        }
        Ok(manifest)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let body = serde_json::to_vec_pretty(self).map_err(|e| LabError::Invalid(e.to_string()))?;
        let tmp = dir.join(format!("{LAB_FILE}.tmp"));
        std::fs::write(&tmp, body).map_err(|e| LabError::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io(format!("writing {}", path.display()), e))
    }

    pub fn vm(&self, name: &str) -> Option<(&LabHost, &LabVm)> {
        self.hosts.iter().find_map(|h| h.vms.iter().find(|v| v.name == name).map(|v| (h, v)))
    }
}

impl LabDisk {
    /// The partition the guest mounts at `mount`.
    pub fn mounted(&self, mount: &str) -> Option<&LabPartition> {
        self.partitions.iter().find(|p| p.mount.as_deref() == Some(mount))
    }
}
