//! The texts of the account messages: plain text, one link each, and a line saying what
//! to do when the message was not expected. Subjects are fixed, so nothing a user typed
//! reaches a header.

/// One message's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: String,
}

/// "Reset your password": `link` opens the page where a new password is chosen.
pub fn password_reset(link: &str, valid_for: &str) -> Message {
    Message {
        subject: "Reset your Selextract password".to_owned(),
        body: format!(
            "Someone (hopefully you) asked to reset the password of the Selextract account \
             for this address.\n\nTo choose a new password, open this link within {valid_for}:\n\n\
             {link}\n\nThe link works once. Resetting the password signs the account out \
             everywhere.\n\nIf you did not ask for this, ignore this message: your password \
             stays as it is.\n"
        ),
    }
}

/// "Confirm your address": `link` marks the address verified.
pub fn verify_email(link: &str, valid_for: &str) -> Message {
    Message {
        subject: "Confirm your e-mail address for Selextract".to_owned(),
        body: format!(
            "To confirm that this address belongs to your Selextract account, open this link \
             within {valid_for}:\n\n{link}\n\nIf you did not create an account, ignore this \
             message.\n"
        ),
    }
}

/// "You are invited": `link` opens sign-up with the invitation.
pub fn invitation(link: &str, valid_for: &str) -> Message {
    Message {
        subject: "You are invited to Selextract".to_owned(),
        body: format!(
            "An administrator of a Selextract installation invited this address to create an \
             account.\n\nTo accept, open this link within {valid_for}:\n\n{link}\n\nIf you do \
             not want an account, ignore this message: the invitation expires by itself.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_carries_its_link_on_a_line_of_its_own() {
        let link = "https://sx.example/account/reset-password?token=abc";
        for message in [
            password_reset(link, "1 hour"),
            verify_email(link, "24 hours"),
            invitation(link, "7 days"),
        ] {
            assert!(message.body.lines().any(|line| line == link), "{message:?}");
            assert!(!message.subject.contains('\n'));
        }
        assert!(
            password_reset(link, "1 hour")
                .body
                .contains("within 1 hour")
        );
        assert!(invitation(link, "7 days").body.contains("within 7 days"));
    }
}
