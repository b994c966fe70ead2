-- paas -- the routes of notifications (httpd/routes_notify.inc) in the
-- route table (95_routes.sql), in the gateway's order: routes.c includes
-- routes_notify.inc after the subscriptions.  The functions are in
-- 75_notifications.sql.

INSERT INTO paas.route_tags (name, seq, description) VALUES
	('notifications', 10, 'E-mail: one-click unsubscribe of reminders, and the deliveries for administrators');

SELECT paas.routes_add($routes$[
  {"method": "POST", "path": "/api/v1/auth/forgot-password", "function": "api.auth_forgot_password", "access": "public",
   "status": 200, "message": "If an account exists for this e-mail, a reset link has been sent",
   "flags": ["rate_register"], "tag": "auth",
   "summary": "Mail a password reset link (the same answer whether the address has an account or not)",
   "request": {
     "type": "object",
     "required": ["email"],
     "properties": {"email": {"$ref": "#/components/schemas/Email"}}
   },
   "requestRequired": true,
   "response": {"type": "null"},
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/auth/reset-password", "function": "api.auth_reset_password", "access": "public",
   "status": 200, "message": "Password has been reset", "flags": ["rate_register"], "tag": "auth",
   "summary": "Set a new password with the token of a reset link (single use; every session is revoked)",
   "request": {
     "type": "object",
     "required": ["token", "newPassword", "confirmNewPassword"],
     "properties": {
       "token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the reset link"},
       "newPassword": {"$ref": "#/components/schemas/Password"},
       "confirmNewPassword": {"type": "string", "description": "the same as newPassword"}
     }
   },
   "requestRequired": true,
   "response": {"type": "null"},
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/auth/verify-email", "function": "api.auth_verify_email", "access": "public",
   "status": 200, "message": "E-mail address verified", "flags": ["rate_refresh"], "tag": "auth",
   "summary": "Verify the address a verification link was mailed to",
   "request": {
     "type": "object",
     "required": ["token"],
     "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the link"}}
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["verified", "email"],
     "properties": {"verified": {"const": true}, "email": {"type": "string"}}
   },
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/auth/resend-verification", "function": "api.auth_resend_verification",
   "access": "user", "status": 200, "message": "Verification e-mail sent", "tag": "auth",
   "summary": "Mail a new verification link (one a minute)",
   "response": {
     "type": "object",
     "required": ["email", "verified", "sent"],
     "properties": {
       "email": {"type": "string"},
       "verified": {"type": "boolean", "description": "true: the address is verified already, nothing was sent"},
       "sent": {"type": "boolean"}
     }
   },
   "errors": [429]},
  {"method": "GET", "path": "/api/v1/auth/notifications", "function": "api.auth_notifications", "access": "user",
   "status": 200, "message": "Notification preferences retrieved successfully", "tag": "auth",
   "summary": "The caller's mail preferences and whether the address is verified",
   "response": {"$ref": "#/components/schemas/MailPreferences"}},
  {"method": "PUT", "path": "/api/v1/auth/notifications", "function": "api.auth_notifications_update", "access": "user",
   "status": 200, "message": "Notification preferences updated successfully", "tag": "auth",
   "summary": "Set the mail locale and turn reminders on or off (transactional mails always go)",
   "request": {
     "type": "object",
     "properties": {
       "locale": {"enum": ["id", "en"]},
       "reminders": {"type": "boolean", "description": "renewal reminders"},
       "transactional": {"const": true, "description": "cannot be turned off"}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/MailPreferences"},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/notifications/unsubscribe", "function": "api.notifications_unsubscribe_info",
   "access": "public", "status": 200, "message": "Unsubscribe link is valid", "flags": ["rate_refresh"],
   "tag": "notifications",
   "summary": "What an unsubscribe link would do (changes nothing: link scanners follow links)",
   "query": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the link"}},
   "response": {"$ref": "#/components/schemas/Unsubscribe"},
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/notifications/unsubscribe", "function": "api.notifications_unsubscribe",
   "access": "public", "status": 200, "message": "Reminders turned off", "flags": ["rate_refresh", "form"],
   "tag": "notifications",
   "summary": "One-click unsubscribe of reminders (RFC 8058: the List-Unsubscribe URL, POSTed as a form)",
   "query": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the link"}},
   "response": {"$ref": "#/components/schemas/Unsubscribe"},
   "errors": [400, 429]},
  {"method": "GET", "path": "/api/v1/admin/notifications", "function": "api.admin_notifications", "access": "admin",
   "status": 200, "message": "Notifications retrieved successfully", "flags": ["paginated"], "tag": "notifications",
   "summary": "Mails with their status, attempts and last error, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "status": {"enum": ["PENDING", "SENDING", "SENT", "FAILED", "SUPPRESSED"]},
     "kind": {"type": "string", "description": "a kind of paas.notification_kinds"},
     "search": {"type": "string", "minLength": 1, "maxLength": 254, "description": "part of the recipient's address"},
     "userId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/admin/notifications/:id", "function": "api.admin_notification_get",
   "access": "admin", "status": 200, "message": "Notification retrieved successfully", "tag": "notifications",
   "summary": "A mail and every SMTP attempt of it",
   "pathParams": {"id": {"type": "string", "pattern": "^[0-9]+$", "description": "the mail's id"}},
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Notification"},
     {"type": "object", "required": ["deliveries"], "properties": {"deliveries": {"type": "array", "items": {
       "type": "object",
       "required": ["attempt", "at", "outcome", "smtpCode", "reply"],
       "properties": {
         "attempt": {"type": "integer"},
         "at": {"type": "string", "format": "date-time"},
         "outcome": {"enum": ["sent", "temporary", "permanent", "unavailable"]},
         "smtpCode": {"type": ["integer", "null"]},
         "reply": {"type": ["string", "null"], "description": "the server's reply, or the connection error"}
       }}}}}
   ]},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/admin/notifications/:id/resend", "function": "api.admin_notification_resend",
   "access": "admin", "status": 200, "message": "Notification queued again", "tag": "notifications",
   "summary": "Queue a sent or failed mail again, as a new mail",
   "pathParams": {"id": {"type": "string", "pattern": "^[0-9]+$", "description": "the mail's id"}},
   "response": {"$ref": "#/components/schemas/Notification"},
   "errors": [404, 409]}
]$routes$);

INSERT INTO paas.route_schemas (name, schema)
SELECT key, value FROM jsonb_each($schemas$
{
  "MailPreferences": {
    "type": "object",
    "required": ["email", "emailVerified", "locale", "reminders", "transactional"],
    "properties": {
      "email": {"type": "string"},
      "emailVerified": {"type": "boolean"},
      "locale": {"enum": ["id", "en"]},
      "reminders": {"type": "boolean", "description": "renewal reminders"},
      "transactional": {"const": true, "description": "transactional mails always go"}
    }
  },
  "Unsubscribe": {
    "type": "object",
    "required": ["email", "reminders", "transactional"],
    "properties": {
      "email": {"type": "string", "description": "the address, most of its local part hidden"},
      "reminders": {"type": "boolean"},
      "transactional": {"const": true}
    }
  },
  "Notification": {
    "type": "object",
    "required": ["id", "kind", "category", "userId", "recipient", "status", "attempts", "lastError", "lastReply",
                 "smtpCode", "messageId", "resentFrom", "dueAt", "createdAt", "sentAt", "updatedAt"],
    "properties": {
      "id": {"type": "integer"},
      "kind": {"type": "string"},
      "category": {"enum": ["transactional", "reminder", "admin"]},
      "userId": {"type": ["string", "null"], "format": "uuid"},
      "recipient": {"type": ["string", "null"]},
      "status": {"enum": ["PENDING", "SENDING", "SENT", "FAILED", "SUPPRESSED"]},
      "attempts": {"type": "integer", "minimum": 0},
      "lastError": {"type": ["string", "null"]},
      "lastReply": {"type": ["string", "null"], "description": "the SMTP server's last reply"},
      "smtpCode": {"type": ["integer", "null"]},
      "messageId": {"type": ["string", "null"], "description": "the same for every attempt of the mail"},
      "resentFrom": {"type": ["integer", "null"]},
      "dueAt": {"type": ["string", "null"], "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"},
      "sentAt": {"type": ["string", "null"], "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  }
}
$schemas$::jsonb);
