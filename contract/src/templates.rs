//! `/api/templates`: localized message templates and their preview (R-TPL).

use crate::operation::{Access, Api, Op, Resource};
use switchboard_core::config::Resource as _;
use switchboard_core::message::Rendered;
use switchboard_core::templates::{RenderRequest, Template};

pub fn describe(api: &mut Api) {
    Resource::<Template>::new("/api/templates", "Templates", "template").describe(api);
    let body = api.schema::<RenderRequest>();
    let rendered = api.schema::<Rendered>();
    api.add(
        Op::post("/api/templates/{id}/render", "render_template", "Preview a template for one contact")
            .tag("Templates")
            .access(Access::Key(Template::READERS))
            .path_param("id", "The template's id.")
            .describe("Renders the version for `locale`, else its language without region (`nb-NO` → `nb`), else the default locale; `locale` in the answer says which. For WhatsApp only approved versions count, and the answer adds the Content SID and the `content_variables` Twilio fills in. A placeholder without a value (`missing_placeholder`), an SMS over 1,600 characters (`sms_too_long`) or no approved WhatsApp version (`no_approved_version`) is a 422 naming the field.")
            .body(body)
            .answers(200, "The rendered text and the version used.", rendered),
    );
}
