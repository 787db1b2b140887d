//! TODO area: templates.

use crate::operation::Api;

pub fn describe(_api: &mut Api) {}
