//! The registry of OOD set kinds (`kind = "..."` in an `[ood.<name>]` table): one file each in this
//! folder, one line each in [`registry!`] below.
//!
//! A kind's file holds everything about it: its description ([`SetKind`]: name, its own config
//! keys with their defaults and checks, the version of what it makes), from which the config is
//! checked and the set's data stage keyed, and the code that makes the set's images (`mod code`,
//! compiled only where libtorch is, `cfg(oodpipe_compute)`). Like `detectors/`, this folder is
//! compiled twice: by `oodpipe-plan` (descriptions) and by `oodpipe-stages` (descriptions and code).
//!
//! A file left out of the registry fails the test `every_ood_kind_file_is_registered`; a listed one
//! without a `KIND` or (in the stages crate) a `code::Code` does not compile. A `kind` no file
//! declares is refused by the config check, naming the registered ones; nothing falls back to a
//! default kind.

use crate::ood::SetKind;

macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every registered kind.
        pub const ALL: &[&SetKind] = &[$(&$name::KIND),*];

        /// The code that makes a set of the kind called `name`.
        #[cfg(oodpipe_compute)]
        pub fn code(name: &str) -> Option<&'static dyn crate::data::ood_set::Make> {
            $(if name == $name::KIND.name {
                return Some(&$name::code::Code);
            })*
            None
        }
    };
}

registry! {
    gaussian,
    uniform,
    image_folder,
}
