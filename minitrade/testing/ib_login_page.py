"""HTML of the fake gateway's SSO login page, with the real page's field names and classes.

Targets match what ibeam drives on the real page (version 2, since 2023): `input[name=username]`,
`input[name=password]`, `button.btn.btn-lg.xyz-button-login`, `.xyz-errormessage`, `#twofactbase`,
`.login-step-notification` (push 2FA waiting), `label[for=toggle1]` (live/paper switch).
"""

from __future__ import annotations

from html import escape

LOGIN_PATH = "/sso/Login"
SUCCESS_TEXT = "Client login succeeds"

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Interactive Brokers - Client Portal Login</title>
<style>.hidden{{display:none}} .xyz-errormessage{{color:#b00}}</style></head>
<body>
<div class="login-container">
 <form id="xyzform" class="xyzform-username" method="post" action="/sso/Login?forwardTo=22&amp;RL=1&amp;ip2loc=on">
  <div class="form-group"><input type="text" name="username" id="xyz-field-username" autocomplete="off"></div>
  <div class="form-group"><input type="password" name="password" id="xyz-field-password"></div>
  <div class="form-group"><input type="checkbox" id="toggle1" name="loginType" value="2"{paper_checked}>
   <label for="toggle1">Paper</label></div>
  <button type="submit" class="btn btn-lg btn-primary xyz-button-login">Login</button>
 </form>
 <div class="xyz-errormessage{error_hidden}">{error}</div>
 <div id="twofactbase" class="{code_hidden}"><form id="xyzform-2fa" method="post" action="/sso/Login?forwardTo=22&amp;RL=1&amp;ip2loc=on">
  <label for="xyz-field-bronze-response">{code_text}</label><input id="xyz-field-bronze-response" name="gold-response" autocomplete="off"></form></div>
 <div class="login-step-notification{push_hidden}">{push_text}</div>
 <pre id="result">{result}</pre>
</div>
{script}
</body></html>
"""

# While a push is pending the real page polls; ours asks the fake for the outcome the same way.
_POLL = """<script>
(function poll(){
  fetch('/__fake/login-status').then(r => r.json()).then(s => {
    if (s.state === 'authenticated') { document.getElementById('result').textContent = 'SUCCESS_TEXT';
      document.querySelector('.login-step-notification').className = 'login-step-notification hidden'; }
    else if (s.state === 'timeout') { var e = document.querySelector('.xyz-errormessage');
      e.textContent = 'Second factor authentication timed out. Please try again.'; e.className = 'xyz-errormessage'; }
    else { setTimeout(poll, 300); }
  }).catch(function(){ setTimeout(poll, 500); });
})();
</script>""".replace("SUCCESS_TEXT", SUCCESS_TEXT)


def render(*, error: str = "", push_pending: bool = False, success: bool = False, paper: bool = True,
           code_prompt: bool = False) -> bytes:
    """The login page in one of its states (`code_prompt`: a typed second factor, submitted with RETURN)."""
    return _PAGE.format(
        code_hidden="" if code_prompt else "hidden",
        code_text="Enter the security code sent to your phone" if code_prompt else "",
        paper_checked=" checked" if paper else "",
        error=escape(error), error_hidden="" if error else " hidden",
        push_hidden="" if push_pending else " hidden",
        push_text="A notification has been sent to your IB Key app. Please approve it to continue."
        if push_pending else "",
        result=SUCCESS_TEXT if success else "",
        script=_POLL if push_pending else "",
    ).encode()
