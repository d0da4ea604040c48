"""The dispatcher: claims approved SMS and e-mail, sends them through the adapters, records the answers.

One unit of work per claim and one per record (see ``service.py`` for why the provider call sits
between two commits); woken after every committed consumer batch, else polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import httpx

from services.channels import service
from services.channels.adapters.mail import MailProvider
from services.channels.adapters.sms import SmsProvider
from services.channels.domain.messages import OutgoingEmail, OutgoingSms, SendResult
from services.channels.settings import Settings
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, runtime: Runtime[Settings], sms: SmsProvider, mail: MailProvider) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.sms, self.mail = sms, mail
        self.policy = service.RetryPolicy(max_tries=self.settings.max_send_tries,
                                          backoff_base_s=self.settings.retry_backoff_base_s,
                                          backoff_max_s=self.settings.retry_backoff_max_s)
        self.unsubscribe = unsubscribe_links(runtime)
        if self.unsubscribe is None:
            log.warning("e-mails go without an unsubscribe link: set CHANNELS_PUBLIC_BASE_URL")
        self.portal = portal_links(self.settings)
        if self.portal is None:
            log.info("messages go without a customer portal link: set PORTAL_BASE_URL")
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        while not self.runtime.stopping.is_set():
            self._wakeup.clear()  # before the pass, so a wake during it is not lost
            try:
                await self.recover_stale()
                while await self.dispatch_once() > 0:
                    pass
            except Exception:
                log.exception("dispatch pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.dispatch_idle_wait_s)

    async def dispatch_once(self) -> int:
        """Claim, send and record one batch. Returns how many attempts it handled."""
        async with self.runtime.units() as uow:
            claimed = await service.claim_for_dispatch(uow, limit=self.settings.dispatch_batch)
            sendable = await service.revoke_held_claims(uow, claimed=claimed)  # a hold heard of since: not sent
            # each tenant's branding and templates in force (cached for seconds: no query per message)
            content = await service.tenant_content(uow.session, {a.tenant for a in sendable}) if sendable else {}
            await uow.commit()
        if not sendable:
            return len(claimed)
        ready, unusable = service.prepare_messages(sendable, self.runtime.cipher, unsubscribe=self.unsubscribe,
                                                   content=content, portal=self.portal)
        sms = [m for m in ready if isinstance(m, OutgoingSms)]
        mail = [m for m in ready if isinstance(m, OutgoingEmail)]
        sms_results, mail_results = await asyncio.gather(
            self.sms.send(sms) if sms else _none(), self.mail.send(mail) if mail else _none())
        async with self.runtime.units() as uow:
            await service.record_results(uow, results=[*unusable, *sms_results, *mail_results], policy=self.policy)
            await uow.commit()
        return len(claimed)

    async def recover_stale(self) -> int:
        async with self.runtime.units() as uow:
            recovered = await service.recover_interrupted(uow, lease_s=self.settings.dispatch_lease_s,
                                                          max_tries=self.settings.max_send_tries)
            await uow.commit()
        return recovered


async def _none() -> list[SendResult]:
    return []


def unsubscribe_links(runtime: Runtime[Settings]) -> service.UnsubscribeLinks | None:
    """Each e-mail's unsubscribe link, as the settings describe it (None: no address to link to)."""
    s = runtime.settings
    if s.unsubscribe_base_url is None or s.unsubscribe_active_key is None:
        return None
    identity = runtime.identity
    return service.UnsubscribeLinks(
        base_url=s.unsubscribe_base_url, key_id=s.unsubscribe_active_key,
        key=s.unsubscribe_signing_keys[s.unsubscribe_active_key], ttl=timedelta(days=s.unsubscribe_ttl_days),
        destination_key_of=lambda address: identity.contact_point_key(channel="email", destination=address))


def portal_links(s: Settings) -> service.PortalLinks | None:
    """Each message's customer portal link, as the shared settings describe it (None: PORTAL_BASE_URL unset)."""
    base = s.portal_url_base
    if base is None:
        return None
    return service.PortalLinks(base_url=base, key=s.portal_key, ttl=timedelta(hours=s.portal_link_ttl_hours))


def sms_provider(client: httpx.AsyncClient, s: Settings) -> SmsProvider:
    """The SMS provider as the settings describe it (shared by the dispatcher and the reconciler)."""
    return SmsProvider(client, s.sms_base_url, s.sms_sender, timeout_s=s.sms_timeout_s, account=s.sms_account,
                       max_batch=s.sms_max_batch, receipt_url=s.sms_receipt_url)


async def dispatch_loop(runtime: Runtime[Settings]) -> None:
    """Runs the dispatcher for the service's lifetime; woken after every committed consumer batch."""
    s = runtime.settings
    async with httpx.AsyncClient() as client:
        dispatcher = Dispatcher(
            runtime, sms_provider(client, s),
            MailProvider(s.smtp_host, s.smtp_port, s.mail_from, tls=s.smtp_tls, username=s.smtp_username,
                         password=s.smtp_password, timeout_s=s.smtp_timeout_s))
        runtime.consumer_units.after_commit.append(dispatcher.wake)  # new approved contacts to send
        await dispatcher.run()
